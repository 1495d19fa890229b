/** What a node takes from a release: its artifacts by role, the blobs behind them, the install steps in manifest order. */
import { describe, expect, it } from 'vitest';
import { installSteps, neededBlobs, selectArtifacts } from '../../client/plan.js';
import type { Artifact, DebArtifact, FileArtifact, GemArtifact, OciImageArtifact } from '../../manifests/types.js';
import { releaseManifest, sha256 } from '../support/release.js';

const HEX = (c: string): string => c.repeat(64);

const file = (path: string, digest: string, roles?: string[]): FileArtifact => ({
  kind: 'file', path, sha256: digest, size: 100, urls: [`http://up.invalid/${path}`], ...(roles ? { roles } : {}),
});
const deb = (pkg: string, digest: string, roles?: string[]): DebArtifact => ({
  kind: 'deb', path: `debs/${pkg}.deb`, sha256: digest, size: 200, urls: [], package: pkg, version: '1.0', arch: 'amd64', ...(roles ? { roles } : {}),
});
const gem = (name: string, digest: string, roles?: string[]): GemArtifact => ({
  kind: 'gem', path: `gems/${name}.gem`, sha256: digest, size: 300, urls: [], gem: name, version: '1.0', ...(roles ? { roles } : {}),
});
const image = (path: string, digest: string, blobs: Array<[string, number]>, roles?: string[]): OciImageArtifact => ({
  kind: 'oci-image', path, sha256: digest, size: 400, image: `registry.invalid/${path}:1`, blobs: blobs.map(([sha256, size]) => ({ sha256, size })),
  ...(roles ? { roles } : {}),
});

const paths = (as: readonly Artifact[]): string[] => as.map((a) => a.path);

describe('selectArtifacts', () => {
  const artifacts: Artifact[] = [
    file('components/router.tgz', HEX('1'), ['router']),
    file('components/dea.tgz', HEX('2'), ['dea', 'stager']),
    file('components/common.tgz', HEX('3')), // no roles: every node
    file('components/empty-roles.tgz', HEX('4'), []), // an empty list: every node too
    image('images/cc', HEX('5'), [], ['core']),
  ];
  const m = releaseManifest({ release: '1.0.0', serial: 1, artifacts });

  it('a node with several roles takes every artifact naming any of them, and those with no roles, in manifest order', () => {
    expect(paths(selectArtifacts(m, ['stager', 'core']))).toEqual(['components/dea.tgz', 'components/common.tgz', 'components/empty-roles.tgz', 'images/cc']);
    expect(paths(selectArtifacts(m, ['router']))).toEqual(['components/router.tgz', 'components/common.tgz', 'components/empty-roles.tgz']);
  });

  it('a node whose roles no artifact names still takes the artifacts without roles', () => {
    expect(paths(selectArtifacts(m, ['gateway']))).toEqual(['components/common.tgz', 'components/empty-roles.tgz']);
  });

  it('a node without roles takes everything (a copy, not the manifest list)', () => {
    const all = selectArtifacts(m, []);
    expect(paths(all)).toEqual(paths(artifacts));
    all.pop();
    expect(m.artifacts).toHaveLength(5);
  });
});

describe('neededBlobs', () => {
  it('each artifact, then the config and layers of an image; a blob shared by two artifacts is listed once with both paths', () => {
    const shared = HEX('c');
    const blobs = neededBlobs([
      file('components/a.tgz', HEX('a')),
      image('images/one', HEX('1'), [[HEX('d'), 10], [shared, 20]]),
      image('images/two', HEX('2'), [[shared, 20], [HEX('e'), 30]]),
      file('components/a-again.tgz', HEX('a')),
    ]);
    expect(blobs).toEqual([
      { sha256: HEX('a'), size: 100, paths: ['components/a.tgz', 'components/a-again.tgz'] },
      { sha256: HEX('1'), size: 400, paths: ['images/one'] },
      { sha256: HEX('d'), size: 10, paths: ['images/one'] },
      { sha256: shared, size: 20, paths: ['images/one', 'images/two'] },
      { sha256: HEX('2'), size: 400, paths: ['images/two'] },
      { sha256: HEX('e'), size: 30, paths: ['images/two'] },
    ]);
  });

  it('nothing selected, nothing needed', () => {
    expect(neededBlobs([])).toEqual([]);
  });
});

describe('installSteps', () => {
  it('manifest order, numbered from 0, each step named by path and digest', () => {
    const steps = installSteps([file('components/a.tgz', HEX('a')), gem('rack', HEX('b')), image('images/x', HEX('c'), [[HEX('d'), 1]])]);
    expect(steps.map((s) => [s.index, s.kind, s.path, s.sha256])).toEqual([
      [0, 'file', 'components/a.tgz', HEX('a')],
      [1, 'gem', 'gems/rack.gem', HEX('b')],
      [2, 'oci-image', 'images/x', HEX('c')],
    ]);
    expect(steps[1]).toMatchObject({ artifact: { gem: 'rack' } });
  });

  it('all debs go in one step at the place of the first, named by all their paths and one digest over theirs', () => {
    const hello = deb('hello', HEX('1'));
    const tree = deb('tree', HEX('2'));
    const steps = installSteps([file('components/a.tgz', HEX('a')), hello, gem('rack', HEX('b')), tree]);
    expect(steps.map((s) => [s.index, s.kind, s.path])).toEqual([
      [0, 'file', 'components/a.tgz'],
      [1, 'deb', 'debs: debs/hello.deb debs/tree.deb'],
      [2, 'gem', 'gems/rack.gem'],
    ]);
    const group = steps[1]!;
    expect(group.kind === 'deb' && group.debs).toEqual([hello, tree]);
    expect(group.sha256).toBe(sha256(`${HEX('1')}\n${HEX('2')}`));
  });

  it('a single deb is a step of its own path and digest', () => {
    const steps = installSteps([deb('hello', HEX('1'))]);
    expect(steps).toEqual([{ index: 0, kind: 'deb', path: 'debs/hello.deb', sha256: HEX('1'), debs: [deb('hello', HEX('1'))] }]);
  });

  it('a change in any deb of the group makes a new step identity (a stale journal line cannot match it)', () => {
    const before = installSteps([deb('hello', HEX('1')), deb('tree', HEX('2'))])[0]!;
    const after = installSteps([deb('hello', HEX('1')), deb('tree', HEX('3'))])[0]!;
    expect(after.path).toBe(before.path);
    expect(after.sha256).not.toBe(before.sha256);
  });

  it('the steps of what a role selects: roles first, then order', () => {
    const m = releaseManifest({
      release: '1.0.0',
      serial: 1,
      artifacts: [deb('base', HEX('1')), file('components/router.tgz', HEX('a'), ['router']), deb('routerd', HEX('2'), ['router']), gem('dea', HEX('b'), ['dea'])],
    });
    expect(installSteps(selectArtifacts(m, ['dea'])).map((s) => s.path)).toEqual(['debs/base.deb', 'gems/dea.gem']);
    expect(installSteps(selectArtifacts(m, ['router'])).map((s) => s.path)).toEqual(['debs: debs/base.deb debs/routerd.deb', 'components/router.tgz']);
  });
});
