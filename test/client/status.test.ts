/** `airlock-node status` over a state dir made by hand: installed.json, accepted.json, envelopes, the staging store, journals. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import { appendJournal } from '../../client/journal.js';
import { envelopeFile, journalFile, statePaths, writeAccepted, writeInstalled, writeStateFile, type StatePaths } from '../../client/state.js';
import { nodeStatus } from '../../client/status.js';
import { generateKey, type Artifact } from '../../manifests/index.js';
import { openStore } from '../../storage/index.js';
import { releaseManifest, sha256, signManifest } from '../support/release.js';

const key = generateKey();
const bytes = (s: string): Buffer => Buffer.from(s);
const app = bytes('app tarball, 27 bytes long.');
const layer = bytes('a layer of 16 B.');
const imageManifest = bytes('{"layers":["one"]}');

const artifacts: Artifact[] = [
  { kind: 'file', path: 'components/app.tgz', sha256: sha256(app), size: app.length, urls: [] },
  { kind: 'oci-image', path: 'images/app', image: 'registry.invalid/app:1', sha256: sha256(imageManifest), size: imageManifest.length, blobs: [{ sha256: sha256(layer), size: layer.length }] },
];
const total = app.length + layer.length + imageManifest.length;

let state: StatePaths;
beforeEach(() => {
  state = statePaths(join(mkdtempSync(join(tmpdir(), 'airlock-node-status-')), 'state'));
});

/** The envelope as `upgrade` keeps it once verified. */
const keepRelease = (release: string, serial: number, as: Artifact[] = artifacts): void =>
  writeStateFile(envelopeFile(state, release), signManifest(releaseManifest({ release, serial, artifacts: as }), [key]));

async function stage(...blobs: Buffer[]): Promise<void> {
  const store = await openStore({ cacheDir: state.staging, write: true });
  try {
    for (const b of blobs) await store.ingestStream({ sha256: sha256(b), size: b.length }, Readable.from([b]));
  } finally {
    await store.close();
  }
}

describe('nodeStatus', () => {
  it('a state dir with nothing yet (not even made): nothing installed, no release', async () => {
    const { data, text } = await nodeStatus(state.dir);
    expect(data).toEqual({ stateDir: state.dir, installed: null, accepted: {}, releases: [] });
    expect(text).toBe(`state dir: ${state.dir}\ninstalled: nothing yet`);
  });

  it('a release downloaded but not installed: its blobs staged, image config and layers counted, an empty journal', async () => {
    keepRelease('1.0.0', 1);
    await stage(app, layer, imageManifest);
    const { data, text } = await nodeStatus(state.dir);
    expect(data.releases).toEqual([{ release: '1.0.0', staged: { blobs: 3, present: 3, bytes: total, presentBytes: total }, journal: [] }]);
    expect(text.split('\n')).toEqual([`state dir: ${state.dir}`, 'installed: nothing yet', `release 1.0.0: staged 3/3 blob(s), ${total} B of ${total} B; journal 0 step(s) done`]);
  });

  it('staged in part: counts what the staging store holds; no staging store at all counts none', async () => {
    keepRelease('1.0.0', 1);
    expect((await nodeStatus(state.dir)).data.releases[0]!.staged).toEqual({ blobs: 3, present: 0, bytes: total, presentBytes: 0 });
    await stage(layer);
    const { data, text } = await nodeStatus(state.dir);
    expect(data.releases[0]!.staged).toEqual({ blobs: 3, present: 1, bytes: total, presentBytes: layer.length });
    expect(text).toContain(`release 1.0.0: staged 1/3 blob(s), ${layer.length} B of ${total} B;`);
  });

  it('installed, accepted, and a journal: each finished step listed, numbered from 1, with its note', async () => {
    keepRelease('1.0.0', 1);
    keepRelease('1.1.0', 2, artifacts.slice(0, 1));
    await stage(app, layer, imageManifest);
    appendJournal(journalFile(state, '1.0.0'), { step: 0, path: 'components/app.tgz', kind: 'file', sha256: sha256(app), note: 'extracted 2 file(s) to /opt/app' });
    appendJournal(journalFile(state, '1.0.0'), { step: 1, path: 'images/app', kind: 'oci-image', sha256: sha256(imageManifest) });
    writeAccepted(state, { product: 'stackato', serial: 1, digest: 'd'.repeat(64) });
    writeInstalled(state, { product: 'stackato', release: '1.0.0', serial: 1, digest: 'd'.repeat(64), installedAt: '2026-02-01T10:00:00.000Z' });

    const { data, text } = await nodeStatus(state.dir);
    expect(data.installed).toMatchObject({ release: '1.0.0', serial: 1 });
    expect(data.accepted).toEqual({ stackato: { product: 'stackato', serial: 1, digest: 'd'.repeat(64) } });
    expect(data.releases.map((r) => [r.release, r.journal.length])).toEqual([
      ['1.0.0', 2],
      ['1.1.0', 0],
    ]);
    const lines = text.split('\n');
    expect(lines.slice(0, 3)).toEqual([
      `state dir: ${state.dir}`,
      'installed: 1.0.0 (serial 1, 2026-02-01T10:00:00.000Z)',
      `release 1.0.0: staged 3/3 blob(s), ${total} B of ${total} B; journal 2 step(s) done`,
    ]);
    expect(lines[3]).toMatch(/^ {2}\S+ step 1 file components\/app\.tgz: extracted 2 file\(s\) to \/opt\/app$/);
    expect(lines[4]).toMatch(/^ {2}\S+ step 2 oci-image images\/app$/);
    expect(lines[5]).toBe(`release 1.1.0: staged 1/1 blob(s), ${app.length} B of ${app.length} B; journal 0 step(s) done`);
    expect(lines).toHaveLength(6);
  });

  it('a torn journal line (a crash mid-step) is not shown as done', async () => {
    keepRelease('1.0.0', 1);
    const file = journalFile(state, '1.0.0');
    appendJournal(file, { step: 0, path: 'components/app.tgz', kind: 'file', sha256: sha256(app) });
    writeStateFile(file, `${readFileSync(file, 'utf8')}{"step":1,"pa`);
    const { data, text } = await nodeStatus(state.dir);
    expect(data.releases[0]!.journal.map((j) => j.step)).toEqual([0]);
    expect(text).toContain('journal 1 step(s) done');
  });
});
