import { chmod, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { memoryFetcher, openStore, type Store } from '../../storage/index.js';
import { blobPath } from '../../storage/paths.js';
import { fileArtifact, makeRelease, sha, tmp } from './fixtures.js';

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = await tmp();
  store = await openStore({ cacheDir: dir, write: true });
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const A = 'alpha contents';
const B = 'beta contents, longer';
const rel = makeRelease('3.6.2', [fileArtifact('a.txt', A), fileArtifact('dir/b.txt', B)], 17);

describe('store', () => {
  it('keeps a release byte for byte, lists it, remembers the accepted serial', async () => {
    await store.putRelease(rel);
    const got = await store.getRelease('3.6.2');
    expect(got?.envelope.equals(rel.envelope)).toBe(true);
    expect(got).toMatchObject({ product: 'stackato', release: '3.6.2', serial: 17, digest: rel.digest });
    expect((await store.listReleases()).map((r) => r.release)).toEqual(['3.6.2']);
    expect(await store.acceptedSerials()).toEqual({ stackato: { product: 'stackato', serial: 17, digest: rel.digest } });
    expect(await readFile(join(dir, 'index', 'envelopes', '3.6.2.json'))).toEqual(rel.envelope);
    expect(await store.getRelease('nope')).toBeNull();
  });

  it('refuses a lower serial, or an equal serial with another digest (EROLLBACK)', async () => {
    await store.putRelease(rel);
    await expect(store.putRelease(makeRelease('3.6.1', [], 16))).rejects.toMatchObject({ code: 'EROLLBACK' });
    await expect(store.putRelease(makeRelease('3.6.3', [], 17))).rejects.toMatchObject({ code: 'EROLLBACK' });
    await store.putRelease(rel); // same one again is fine
    await store.putRelease(makeRelease('3.7.0', [], 18));
    expect((await store.acceptedSerials()).stackato?.serial).toBe(18);
  });

  it('status: missing files with paths, digests, sizes; ready once ingested', async () => {
    await store.putRelease(rel);
    let st = await store.status('3.6.2');
    expect(st).toMatchObject({ ready: false, files: { total: 2, present: 0, missing: 2 }, bytes: { missing: A.length + B.length } });
    const f = memoryFetcher({ 'http://up.example/a.txt': Buffer.from(A) });
    await store.ingestFromUrls({ sha256: sha(A), size: A.length }, ['http://up.example/a.txt'], f);
    st = await store.status('3.6.2');
    expect(st.missing).toEqual([{ sha256: sha(B), size: B.length, paths: ['dir/b.txt'] }]);
    expect(st.files).toEqual({ total: 2, present: 1, missing: 1 });
    await store.ingestStream({ sha256: sha(B), size: B.length }, Readable.from([Buffer.from(B)]));
    st = await store.status('3.6.2');
    expect(st.ready).toBe(true);
    expect(await text(await store.read(sha(B)))).toBe(B);
    await expect(store.status('9.9.9')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('a reader store works while the writer holds the lock and the level database', async () => {
    await store.putRelease(rel);
    await store.ingestStream({ sha256: sha(A), size: A.length }, Readable.from([Buffer.from(A)]));
    const reader = await openStore({ cacheDir: dir });
    expect(reader.writable).toBe(false);
    expect((await reader.listReleases()).map((r) => r.release)).toEqual(['3.6.2']);
    expect((await reader.status('3.6.2')).files.present).toBe(1);
    expect(await reader.acceptedSerials()).toMatchObject({ stackato: { serial: 17 } });
    await expect(reader.ingestStream({ sha256: sha(B), size: B.length }, Readable.from([Buffer.from(B)]))).rejects.toMatchObject({
      code: 'EINTERNAL',
    });
    await reader.close();
  });

  it('a reader sees the releases stamp change when the writer stores a release (serve refreshes its catalog on it)', async () => {
    const reader = await openStore({ cacheDir: dir });
    const before = await reader.releasesStamp();
    await new Promise((r) => setTimeout(r, 20));
    await store.putRelease(rel);
    const after = await reader.releasesStamp();
    expect(after).not.toBe(before);
    expect(await reader.releasesStamp()).toBe(after);
    await reader.close();
  });

  it('a second writer fails with ELOCKED naming the holder', async () => {
    const err = await openStore({ cacheDir: dir, write: true, lockWaitMs: 300 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ELOCKED' });
    expect((err as Error).message).toContain(`pid ${process.pid}`);
  });

  it('verify: re-hashes, quarantines corrupt blobs (expected vs found), reports missing ones', async () => {
    await store.putRelease(rel);
    await store.ingestStream({ sha256: sha(A), size: A.length }, Readable.from([Buffer.from(A)]));
    const file = blobPath(dir, sha(A));
    await chmod(file, 0o644);
    await writeFile(file, 'tampered');
    const report = await store.rehash('3.6.2');
    expect(report.checked).toBe(1);
    expect(report.corrupt).toEqual([
      expect.objectContaining({ sha256: sha(A), expectedSize: A.length, foundSize: 8, foundSha256: sha('tampered') }),
    ]);
    expect(report.missing).toEqual([{ sha256: sha(B), size: B.length, paths: ['dir/b.txt'] }]);
    expect(await store.stat(sha(A))).toBeNull();
    expect((await readdir(join(dir, 'quarantine')))[0]).toMatch(new RegExp(`^${sha(A)}\\.`));
    const all = await store.rehash();
    expect(all.corrupt).toEqual([]);
  });

  it('rebuildIndex restores releases, blobs and the accepted serial from files', async () => {
    await store.putRelease(rel);
    await store.ingestStream({ sha256: sha(A), size: A.length }, Readable.from([Buffer.from(A)]));
    await store.close();
    await rm(join(dir, 'index', 'level'), { recursive: true });
    await rm(join(dir, 'index', 'accepted.json'));
    store = await openStore({ cacheDir: dir, write: true });
    expect(await store.rebuildIndex()).toEqual({ releases: 1, blobs: 1 });
    expect(await store.acceptedSerials()).toMatchObject({ stackato: { serial: 17, digest: rel.digest } });
  });
});
