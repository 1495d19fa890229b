import { mkdir, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseDuration } from '../../common/config.js';
import { gc } from '../../storage/gc.js';
import { openStore, type Store } from '../../storage/index.js';
import { partialDir, quarantineDir } from '../../storage/paths.js';
import { fileArt, fill, imageArt, randomBlob, blob, sha, signRelease, snapshot, tmp } from './bundle/fixtures.js';

let dir: string;
let store: Store;
// two releases whose images share a layer; one orphan blob
const shared = randomBlob(5 * 1024 * 1024);
const a1 = randomBlob(30_000);
const aCfg = blob('{"a":1}');
const aMan = blob('{"image":"a"}');
const b1 = randomBlob(20_000);
const bCfg = blob('{"b":1}');
const bMan = blob('{"image":"b"}');
const orphan = randomBlob(7_000);
const relA = signRelease({ release: '1.0', serial: 1, artifacts: [fileArt('a.tgz', a1), imageArt('images/a', aMan, [aCfg, shared])] });
const relB = signRelease({ release: '2.0', serial: 2, artifacts: [fileArt('b.tgz', b1), imageArt('images/b', bMan, [bCfg, shared])] });

beforeEach(async () => {
  dir = await tmp('airlock-gc-');
  store = await openStore({ cacheDir: dir, write: true });
  await fill(store, relA, [a1, aMan, aCfg, shared]);
  await fill(store, relB, [b1, bMan, bCfg]);
  await store.ingestStream({ sha256: orphan.sha256, size: orphan.size }, Readable.from([orphan.bytes]));
  await mkdir(partialDir(dir), { recursive: true });
  await mkdir(quarantineDir(dir), { recursive: true });
  await writeFile(join(partialDir(dir), 'a'.repeat(64)), Buffer.alloc(1000));
  const old = new Date(Date.now() - 48 * 3600 * 1000);
  await utimes(join(partialDir(dir), 'a'.repeat(64)), old, old);
  await writeFile(join(partialDir(dir), 'b'.repeat(64)), Buffer.alloc(500)); // fresh: an ingest may resume it
  await writeFile(join(quarantineDir(dir), `${'c'.repeat(64)}.2026-01-01T00-00-00-000Z`), Buffer.alloc(300));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const digests = (...bs: Array<{ sha256: string }>): string[] => bs.map((b) => b.sha256).sort();

describe('gc', () => {
  it('by default keeps every release: deletes only the orphan, old partials and quarantine', async () => {
    const r = await gc(store);
    expect(r.releases).toEqual({ kept: ['1.0', '2.0'], removed: [] });
    expect(r.blobs.deleted).toEqual({ count: 1, bytes: orphan.size });
    expect(r.partial).toEqual({ count: 1, bytes: 1000 });
    expect(r.quarantine).toEqual({ count: 1, bytes: 300 });
    expect(r.freed).toBe(orphan.size + 1300);
    const snap = await snapshot(store);
    expect(snap.blobs).toEqual(digests(a1, aCfg, aMan, shared, b1, bCfg, bMan));
    expect(snap.partial).toEqual(['b'.repeat(64)]);
    expect(await readdir(quarantineDir(dir))).toEqual([]);
  });

  it('--keep 2.0: drops release 1.0 and its own blobs, keeps the layer 2.0 shares, every kept blob verifies', async () => {
    const r = await gc(store, { keep: ['2.0'] });
    expect(r.releases).toEqual({ kept: ['2.0'], removed: ['1.0'] });
    expect(r.blobs.deleted.count).toBe(4); // a1, aCfg, aMan, orphan
    expect(r.blobs.deleted.bytes).toBe(a1.size + aCfg.size + aMan.size + orphan.size);
    const snap = await snapshot(store);
    expect(snap.releases).toEqual(['2.0']);
    expect(snap.blobs).toEqual(digests(b1, bCfg, bMan, shared));
    expect(snap.corrupt).toEqual([]);
    expect((await store.status('2.0')).ready).toBe(true);
    const v = await store.rehash('2.0');
    expect(v.corrupt).toEqual([]);
    expect(v.missing).toEqual([]);
    expect(await store.getRelease('1.0')).toBeNull();
    // the accepted serial is not forgotten with the release
    expect((await store.acceptedSerials()).stackato?.serial).toBe(2);
  });

  it('--dry-run says what it would free and changes nothing', async () => {
    const before = await snapshot(store);
    const r = await gc(store, { keep: ['1.0'], dryRun: true, partialOlderThanMs: 0 });
    expect(r.dryRun).toBe(true);
    expect(r.releases.removed).toEqual(['2.0']);
    expect(r.blobs.deleted.bytes).toBe(b1.size + bCfg.size + bMan.size + orphan.size);
    expect(r.partial.count).toBe(2);
    expect(await snapshot(store)).toEqual(before);
    expect((await readdir(quarantineDir(dir))).length).toBe(1);
  });

  it('refuses an unknown --keep release (ENOTFOUND) before deleting anything', async () => {
    const before = await snapshot(store);
    await expect(gc(store, { keep: ['9.9'] })).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await snapshot(store)).toEqual(before);
  });

  it('a blob being served while gc deletes it is still delivered whole', async () => {
    const stream = await store.read(a1.sha256); // the descriptor is open once read() returns
    const big = await store.read(shared.sha256);
    await gc(store, { keep: ['2.0'] });
    expect(await store.stat(a1.sha256)).toBeNull();
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(sha(Buffer.concat(chunks))).toBe(a1.sha256);
    big.destroy();
  });

  it('parses durations', () => {
    expect(parseDuration('24h', 'x')).toBe(86_400_000);
    expect(parseDuration('30m', 'x')).toBe(1_800_000);
    expect(parseDuration('7d', 'x')).toBe(604_800_000);
    expect(() => parseDuration('soon', '--partial-older-than')).toThrow(/duration/);
  });
});
