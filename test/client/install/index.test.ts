/**
 * runStep hands each step to the installer of its kind. The deb, gem and
 * image installers run the config's command overrides here: a recorder
 * script that writes down its argv, GEM_HOME and what it was given, so the
 * dispatch is checked without dpkg, gem or Docker.
 */
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runStep } from '../../../client/install/index.js';
import { installSteps } from '../../../client/plan.js';
import type { Artifact } from '../../../manifests/types.js';
import { context, sandbox, sha256 } from './hostile.js';

/** A command that appends one line per call: its argv, GEM_HOME, and sha256/size of each existing file argument or the layout's index.json. */
function recorder(dir: string): { argv: string[]; calls: () => string[][] } {
  const log = join(dir, 'calls.log');
  const script = join(dir, 'record.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      `{`,
      `  printf 'argv'; for a in "$@"; do printf ' %s' "$a"; done; printf '\\n'`,
      `  printf 'GEM_HOME %s\\n' "\${GEM_HOME:-}"`,
      `  for a in "$@"; do`,
      `    if [ -f "$a" ]; then printf 'file %s %s\\n' "$(sha256sum < "$a" | cut -d' ' -f1)" "$(wc -c < "$a" | tr -d ' ')"; fi`,
      `    if [ -f "$a/index.json" ]; then printf 'layout %s %s\\n' "$(cat "$a/index.json" | tr -d '\\n')" "$(ls "$a/blobs/sha256" | sort | tr '\\n' ' ')"; fi`,
      `  done`,
      `  printf 'end\\n'`,
      `} >> ${log}`,
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  return {
    argv: [script],
    calls: () =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('end\n')
            .filter(Boolean)
            .map((c) => c.trim().split('\n'))
        : [],
  };
}

function setup() {
  const s = sandbox('runstep');
  const ctx = context(s.root, s.state);
  const rec = recorder(s.dir);
  ctx.commands = { file: null, deb: rec.argv, gem: rec.argv, 'oci-image': rec.argv };
  return { ...s, ctx, rec };
}

describe('runStep dispatches each step to the installer of its kind', () => {
  it('file: placed under the root by the built-in copy (no command run)', async () => {
    const { root, ctx, rec } = setup();
    const body = Buffer.from('#!/bin/sh\necho router\n');
    const a: Artifact = { kind: 'file', path: 'components/router', urls: [], sha256: ctx.add(body), size: body.length, install: { copy: '/opt/router/run', mode: '0755' } };
    const [step] = installSteps([a]);
    const outcome = await runStep(ctx, step!);
    expect(outcome.note).toBe(`copied to ${join(root, 'opt', 'router', 'run')}`);
    expect(readFileSync(join(root, 'opt', 'router', 'run'))).toEqual(body);
    expect(rec.calls()).toEqual([]);
  });

  it('file without an install target: staged only, nothing written', async () => {
    const { root, ctx } = setup();
    const body = Buffer.from('data');
    const [step] = installSteps([{ kind: 'file', path: 'components/data.bin', urls: [], sha256: ctx.add(body), size: body.length }]);
    expect(await runStep(ctx, step!)).toEqual({ note: 'staged only (no install target in the manifest)' });
    expect(readdirSync(root)).toEqual([]);
  });

  it('deb: one call for the whole group, with a work copy of each staged deb, removed afterwards', async () => {
    const { ctx, rec, state } = setup();
    const hello = Buffer.from('not really a deb: hello');
    const tree = Buffer.from('not really a deb: tree!');
    const debs: Artifact[] = [
      { kind: 'deb', path: 'debs/hello.deb', urls: [], sha256: ctx.add(hello), size: hello.length, package: 'hello', version: '2.10-3', arch: 'amd64' },
      { kind: 'deb', path: 'debs/tree.deb', urls: [], sha256: ctx.add(tree), size: tree.length, package: 'tree', version: '2.1.0', arch: 'amd64' },
    ];
    const steps = installSteps(debs);
    expect(steps).toHaveLength(1);
    const outcome = await runStep(ctx, steps[0]!);
    expect(outcome.note).toBe('dpkg installed hello 2.10-3, tree 2.1.0');
    const work = join(state, 'work');
    const calls = rec.calls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.filter((l) => !l.startsWith('GEM_HOME'))).toEqual([
      `argv ${join(work, 'hello_2.10-3_amd64.deb')} ${join(work, 'tree_2.1.0_amd64.deb')}`,
      `file ${sha256(hello)} ${hello.length}`,
      `file ${sha256(tree)} ${tree.length}`,
    ]);
    expect(readdirSync(work)).toEqual([]);
  });

  it('gem: one call with the staged gem, GEM_HOME inside the root', async () => {
    const { root, ctx, rec, state } = setup();
    const gem = Buffer.from('not really a gem');
    const [step] = installSteps([{ kind: 'gem', path: 'gems/rack-2.2.8.gem', urls: [], sha256: ctx.add(gem), size: gem.length, gem: 'rack', version: '2.2.8' }]);
    const outcome = await runStep(ctx, step!);
    const home = join(root, 'var', 'lib', 'gems');
    expect(outcome.note).toBe(`gem rack 2.2.8 installed into ${home}`);
    expect(rec.calls()).toEqual([[`argv ${join(state, 'work', 'rack-2.2.8.gem')}`, `GEM_HOME ${home}`, `file ${sha256(gem)} ${gem.length}`]]);
    expect(readdirSync(join(state, 'work'))).toEqual([]);
  });

  it('oci-image: the override gets an OCI layout of the manifest and its blobs, and the image name', async () => {
    const { root, ctx, rec } = setup();
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { digest: `sha256:${sha256(config)}` }, layers: [] }));
    const a: Artifact = {
      kind: 'oci-image',
      path: 'images/app',
      image: 'registry.invalid/demo/app:1.0',
      sha256: ctx.add(manifest),
      size: manifest.length,
      blobs: [{ sha256: ctx.add(config), size: config.length }],
    };
    const [step] = installSteps([a]);
    const outcome = await runStep(ctx, step!);
    expect(outcome.note).toBe(`image registry.invalid/demo/app:1.0 installed by ${rec.argv[0]}`);
    const [call] = rec.calls();
    expect(call![0]).toMatch(new RegExp(`^argv \\S+/work/oci-${sha256(manifest).slice(0, 16)} registry\\.invalid/demo/app:1\\.0$`));
    const [, index, blobs] = /^layout (.*\}) (.*)$/.exec(call![2]!)!;
    expect(JSON.parse(index!).manifests).toEqual([
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: `sha256:${sha256(manifest)}`,
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': '1.0', 'io.containerd.image.name': 'registry.invalid/demo/app:1.0' },
      },
    ]);
    expect(blobs!.trim().split(' ').sort()).toEqual([sha256(config), sha256(manifest)].sort());
    // the throwaway layout is gone; nothing was written under the root
    expect(readdirSync(join(ctx.state.work))).toEqual([]);
    expect(readdirSync(root)).toEqual([]);
  });

  it('a release of each kind runs in manifest order, one installer per step', async () => {
    const { ctx, rec } = setup();
    const blob = (s: string) => ({ sha256: ctx.add(Buffer.from(s)), size: s.length });
    const steps = installSteps([
      { kind: 'gem', path: 'gems/a.gem', urls: [], ...blob('gem a'), gem: 'a', version: '1' },
      { kind: 'deb', path: 'debs/b.deb', urls: [], ...blob('deb b'), package: 'b', version: '1', arch: 'all' },
      { kind: 'file', path: 'components/c', urls: [], ...blob('file c') },
      { kind: 'gem', path: 'gems/d.gem', urls: [], ...blob('gem d'), gem: 'd', version: '1' },
    ]);
    const notes: string[] = [];
    for (const s of steps) notes.push((await runStep(ctx, s)).note);
    expect(notes.map((n) => n.split(' ').slice(0, 2).join(' '))).toEqual(['gem a', 'dpkg installed', 'staged only', 'gem d']);
    expect(rec.calls().map((c) => c[0]!.replace(/^argv \S+\//, ''))).toEqual(['a-1.gem', 'b_1_all.deb', 'd-1.gem']);
  });
});
