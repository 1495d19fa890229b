/**
 * index/ as a cache of a shelf's release records (storage/releases/sync.ts),
 * with the shelf in memory and blobs on the filesystem: what one writer puts
 * every other cache_dir over the same shelf sees; records that fail the
 * trust root or name another release are skipped with one warning per
 * version; gone records leave; releases staged before records were shared
 * are published; an unchanged shelf costs one listing; accepted serials
 * never fall; gc keeps young unreferenced blobs.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readSelfSignedRoot, verifyRelease, type VerifiedRelease } from '../../../manifests/index.js';
import type { Artifact } from '../../../manifests/types.js';
import { fsBackend, memoryShelf, openStore, syncRecords, type BlobBackend, type RecordShelf, type Store } from '../../../storage/index.js';
import { gc } from '../../../storage/gc.js';
import { makeTrust, signRelease, type Trust } from '../../../scripts/world/keys.js';
import { releaseManifest } from '../../support/release.js';
import { fileArtifact, tmp } from '../fixtures.js';

let base: string;
let blobs: string;
let trust: Trust;
let shelf: ReturnType<typeof memoryShelf>;
let gets: number;
const opened: Store[] = [];

/** blobs in one folder shared by every cache_dir, and the shelf beside them: what the S3 backend gives */
function sharedBackend(s: RecordShelf = shelf): BlobBackend {
  return Object.assign(Object.create(fsBackend(blobs)) as BlobBackend, { shelf: () => s });
}

function countingShelf(): RecordShelf {
  return {
    where: shelf.where,
    get: (k) => {
      gets++;
      return shelf.get(k);
    },
    put: (k, b) => shelf.put(k, b),
    delete: (k) => shelf.delete(k),
    list: (f) => shelf.list(f),
  };
}

async function open(name: string, write = false, warnings: string[] = [], s?: RecordShelf): Promise<Store> {
  const store = await openStore({
    cacheDir: join(base, name),
    write,
    backend: sharedBackend(s),
    records: { trustRoot: trust.rootJson, warn: (line) => warnings.push(line) },
  });
  opened.push(store);
  return store;
}

function signed(release: string, serial: number, artifacts: Artifact[]): VerifiedRelease {
  const envelope = signRelease(releaseManifest({ release, serial, artifacts }), trust);
  return verifyRelease(envelope, { root: readSelfSignedRoot(trust.rootJson), now: new Date() });
}

async function putBlob(store: Store, body: string): Promise<Artifact> {
  const a = fileArtifact(`${body}.txt`, body);
  await store.ingestStream({ sha256: a.sha256, size: a.size }, Readable.from([Buffer.from(body)]));
  return a;
}

const names = async (s: Store): Promise<string[]> => (await s.listReleases()).map((r) => r.release).sort();

beforeEach(async () => {
  base = await tmp('airlock-sync-');
  blobs = join(base, 'shared-blobs');
  trust = makeTrust(join(base, 'trust'));
  shelf = memoryShelf('memory://bucket/site/');
  gets = 0;
});

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close().catch(() => {});
  await rm(base, { recursive: true, force: true });
});

describe('release records on a shelf', () => {
  it('a release put through one cache_dir is in the shelf and in every other cache_dir, an empty one included', async () => {
    const a = await open('a', true);
    const art = await putBlob(a, 'one');
    await a.putRelease(signed('r1', 1, [art]));
    expect([...shelf.records.keys()].sort()).toEqual(['accepted/stackato.json', 'releases/r1.json']);
    // the record is the stored envelope, byte for byte
    expect(shelf.records.get('releases/r1.json')!.bytes.equals((await a.getRelease('r1'))!.envelope)).toBe(true);

    const b = await open('b');
    expect(await names(b)).toEqual(['r1']);
    expect((await b.status('r1')).ready).toBe(true);
    expect((await b.acceptedSerials()).stackato?.serial).toBe(1);
    expect(existsSync(join(base, 'b', 'index', 'shared'))).toBe(true);
  });

  it('an unchanged shelf costs one listing: nothing is fetched again, even by a new process over the same cache_dir', async () => {
    const a = await open('a', true);
    await a.putRelease(signed('r1', 1, [await putBlob(a, 'one')]));
    await a.putRelease(signed('r2', 2, [await putBlob(a, 'two')]));
    await a.close();
    const b = await open('b', false, [], countingShelf());
    expect(gets).toBeGreaterThanOrEqual(2);
    gets = 0;
    const again = await b.syncRecords();
    expect(again).toMatchObject({ fetched: [], removed: [], releases: 2, changed: false });
    const fresh = await open('b', false, [], countingShelf());
    expect(await names(fresh)).toEqual(['r1', 'r2']);
    // the records are the local bytes (their MD5 is the etag): only the accepted serial, unknown to the new process, is read
    expect(gets).toBe(1);
    // and the local envelopes' MD5s are kept beside them, by mtime and size, for the next process
    const md5s = JSON.parse(await readFile(join(base, 'b', 'index', 'envelope-md5.json'), 'utf8')) as Record<string, { md5: string }>;
    expect(Object.keys(md5s).sort()).toEqual(['r1', 'r2']);
    expect(md5s.r1!.md5).toBe(shelf.records.get('releases/r1.json')!.etag);
  });

  it('a record that fails the trust root, or names another release, is skipped with one warning per version and not served', async () => {
    const a = await open('a', true);
    await a.putRelease(signed('r1', 1, [await putBlob(a, 'one')]));
    const good = shelf.records.get('releases/r1.json')!.bytes;
    // tampered: one byte of the payload changed
    const doc = JSON.parse(good.toString()) as { payload: string };
    const payload = Buffer.from(doc.payload, 'base64').toString().replace('"serial":1', '"serial":7');
    await shelf.put('releases/r9.json', Buffer.from(JSON.stringify({ ...doc, payload: Buffer.from(payload).toString('base64') })));
    // a good envelope under another release's key
    await shelf.put('releases/r2.json', good);
    // not an envelope at all, and not a release name
    await shelf.put('releases/junk.json', Buffer.from('{"hello":'));
    await shelf.put('releases/.hidden.json', good);

    const warnings: string[] = [];
    const b = await open('b', false, warnings);
    expect(await names(b)).toEqual(['r1']);
    expect(warnings).toHaveLength(4);
    expect(warnings.join('\n')).toContain('memory://bucket/site/releases/r9.json');
    expect(warnings.join('\n')).toContain('memory://bucket/site/releases/r2.json: holds release "r1", not "r2"');
    await b.syncRecords();
    expect(warnings).toHaveLength(4); // the same versions: said once
    await shelf.put('releases/junk.json', Buffer.from('still not json'));
    await b.syncRecords();
    expect(warnings).toHaveLength(5);
  });

  it('a gateway whose ETags are not MD5s: a record is fetched once per version and process, not at every poll', async () => {
    const a = await open('a', true);
    await a.putRelease(signed('r1', 1, [await putBlob(a, 'one')]));
    const opaque: RecordShelf = {
      where: shelf.where,
      get: async (k) => {
        gets++;
        const r = await shelf.get(k);
        return r && { bytes: r.bytes, etag: `x-${r.etag}` };
      },
      put: (k, b) => shelf.put(k, b),
      delete: (k) => shelf.delete(k),
      list: async (f) => (await shelf.list(f)).map((e) => ({ ...e, etag: `x-${e.etag}` })),
    };
    const b = await open('b', false, [], opaque);
    expect(await names(b)).toEqual(['r1']);
    gets = 0;
    expect(await b.syncRecords()).toMatchObject({ fetched: [], releases: 1 });
    expect(gets).toBe(0);
  });

  it('without a trust root, records are decoded and checked against their key only', async () => {
    const a = await open('a', true);
    await a.putRelease(signed('r1', 1, [await putBlob(a, 'one')]));
    await shelf.put('releases/r2.json', shelf.records.get('releases/r1.json')!.bytes);
    const warnings: string[] = [];
    const r = await syncRecords(join(base, 'c'), shelf, { warn: (l) => warnings.push(l) });
    expect(r.fetched).toEqual(['r1']);
    expect(r.skipped.map((s) => s.key)).toEqual(['releases/r2.json']);
    expect(warnings).toHaveLength(1);
  });

  it('a local envelope whose record is gone leaves (unless written just now); accepted serials stay', async () => {
    const a = await open('a', true);
    await a.putRelease(signed('r1', 1, [await putBlob(a, 'one')]));
    await a.putRelease(signed('r2', 2, [await putBlob(a, 'two')]));
    const b = await open('b');
    expect(await names(b)).toEqual(['r1', 'r2']);
    await shelf.delete('releases/r1.json');
    // written less than a second before the listing: perhaps a writer's newest release, kept this time
    expect((await b.syncRecords())!.removed).toEqual([]);
    const old = new Date(Date.now() - 60_000);
    await utimes(join(base, 'b', 'index', 'envelopes', 'r1.json'), old, old);
    const before = await b.releasesStamp();
    expect((await b.syncRecords())!.removed).toEqual(['r1']);
    expect(await names(b)).toEqual(['r2']);
    expect(await b.releasesStamp()).not.toBe(before);
    expect(await readdir(join(base, 'b', 'index', 'outlines'))).toEqual(['r2.txt']);
    expect((await b.acceptedSerials()).stackato?.serial).toBe(2);
  });

  it('releases staged before records were shared: a writer publishes them, a reader keeps them', async () => {
    const a = await openStore({ cacheDir: join(base, 'old'), write: true, backend: fsBackend(blobs) });
    await a.putRelease(signed('r0', 1, [await putBlob(a, 'zero')]));
    await a.close();
    const reader = await open('old');
    expect(await names(reader)).toEqual(['r0']);
    expect(shelf.records.has('releases/r0.json')).toBe(false);
    expect(existsSync(join(base, 'old', 'index', 'shared'))).toBe(false);
    await reader.close();
    const writer = await open('old', true);
    expect(await names(writer)).toEqual(['r0']);
    expect(shelf.records.has('releases/r0.json')).toBe(true);
    expect(JSON.parse(shelf.records.get('accepted/stackato.json')!.bytes.toString())).toMatchObject({ serial: 1 });
    expect(existsSync(join(base, 'old', 'index', 'shared'))).toBe(true);
  });

  it('the shelf accepted serial is never lowered, and a writer refuses a rollback against it', async () => {
    const a = await open('a', true);
    await a.putRelease(signed('r5', 5, [await putBlob(a, 'five')]));
    await a.close();
    const b = await open('b', true);
    await expect(b.putRelease(signed('r3', 3, [await putBlob(b, 'three')]))).rejects.toMatchObject({ code: 'EROLLBACK' });
    expect(JSON.parse(shelf.records.get('accepted/stackato.json')!.bytes.toString())).toMatchObject({ serial: 5 });
  });

  it('deleting index/ entirely: the next store rebuilds it from the shelf', async () => {
    const a = await open('a', true);
    await a.putRelease(signed('r1', 1, [await putBlob(a, 'one')]));
    await a.close();
    await rm(join(base, 'a', 'index'), { recursive: true, force: true });
    const again = await open('a', true);
    expect(await names(again)).toEqual(['r1']);
    expect((await again.status('r1')).ready).toBe(true);
  });
});

describe('gc over a shared shelf', () => {
  it('counts every release on the shelf, keeps young unreferenced blobs by grace, removes records of releases not kept', async () => {
    const a = await open('a', true);
    const one = await putBlob(a, 'one');
    await a.putRelease(signed('r1', 1, [one]));
    await a.close();
    const b = await open('b', true);
    const stray = await putBlob(b, 'stray');

    const graced = await gc(b);
    expect(graced.graceMs).toBe(3600_000);
    expect(graced.blobs.deleted.count).toBe(0);
    expect(graced.blobs.young.count).toBe(1);
    expect(await b.stat(stray.sha256)).not.toBeNull();
    expect(await b.stat(one.sha256)).not.toBeNull();

    const now = await gc(b, { graceMs: 0 });
    expect(now.blobs.deleted.count).toBe(1);
    expect(await b.stat(stray.sha256)).toBeNull();
    expect(await b.stat(one.sha256)).not.toBeNull();

    // a record this node cannot check still keeps its blobs, whether it was first seen at open or by gc's own sync
    const theirs = await putBlob(b, 'theirs');
    const other = makeTrust(join(base, 'other-trust'));
    await shelf.put('releases/foreign.json', signRelease(releaseManifest({ release: 'foreign', serial: 9, artifacts: [theirs] }), other));
    const kept = await gc(b, { graceMs: 0 });
    expect(kept.blobs.deleted.count).toBe(0);
    await b.close();
    const warnings: string[] = [];
    const again = await open('b', true, warnings);
    expect(warnings).toHaveLength(1);
    expect((await gc(again, { graceMs: 0 })).blobs.deleted.count).toBe(0);
    expect(await again.stat(theirs.sha256)).not.toBeNull();
    expect(warnings).toHaveLength(1);
    await shelf.delete('releases/foreign.json');

    const r2 = await putBlob(again, 'two');
    await again.putRelease(signed('r2', 2, [r2]));
    const dropped = await gc(again, { keep: ['r2'], graceMs: 0 });
    expect(dropped.releases.removed).toEqual(['r1']);
    expect(shelf.records.has('releases/r1.json')).toBe(false);
    expect(await again.stat(one.sha256)).toBeNull();
    expect(JSON.parse(shelf.records.get('accepted/stackato.json')!.bytes.toString())).toMatchObject({ serial: 2 });
  });

  it('on the filesystem the grace is 0 by default', async () => {
    const dir = join(base, 'fs');
    await mkdir(dir, { recursive: true });
    const s = await openStore({ cacheDir: dir, write: true });
    opened.push(s);
    const stray = await putBlob(s, 'stray');
    const r = await gc(s);
    expect(r.graceMs).toBe(0);
    expect(r.blobs.deleted.count).toBe(1);
    expect(await s.stat(stray.sha256)).toBeNull();
  });
});
