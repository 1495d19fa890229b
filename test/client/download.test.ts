/**
 * airlock-node downloading from several caches goes through the same ingest
 * rules as `airlock stage` does with upstream mirrors: the caches here are
 * fault-injecting upstreams serving /blobs/sha256/HEX.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { downloadBlobs } from '../../client/download.js';
import { cacheClient, type CacheClient } from '../../client/remote.js';
import { openStore, type Store } from '../../storage/index.js';
import { createOutput } from '../../common/output.js';
import { sha256, startFaultUpstream, type Fault, type FaultUpstream } from '../support/fault-upstream.js';

const body = Buffer.from(Array.from({ length: 400_000 }, (_, i) => (i * 31 + 7) % 256));
const digest = sha256(body);
const blobs = [{ sha256: digest, size: body.length, paths: ['components/router.tgz'] }];

let a: FaultUpstream;
let b: FaultUpstream;
let store: Store;
let clients: CacheClient[];
const quiet = createOutput(true, { stdout: new Writable({ write: (_c, _e, cb) => cb() }), stderr: new Writable({ write: (_c, _e, cb) => cb() }) });

beforeEach(async () => {
  [a, b] = await Promise.all([startFaultUpstream(), startFaultUpstream()]);
  store = await openStore({ cacheDir: mkdtempSync(join(tmpdir(), 'airlock-node-dl-')), write: true });
  clients = [cacheClient(a.url, { stallTimeoutMs: 2000 }), cacheClient(b.url, { stallTimeoutMs: 2000 })];
});
afterEach(async () => {
  for (const c of clients) c.close();
  await store.close();
  await Promise.all([a.close(), b.close()]);
});

const serve = (up: FaultUpstream, fault?: Fault): void => void up.files.set(`/blobs/sha256/${digest}`, { body, fault });

describe('downloadBlobs from several caches', () => {
  it('a cache that trickles is left after one rate window; the next cache finishes the blob', async () => {
    serve(a, { kind: 'trickle', at: 30_000, every: 50 });
    serve(b);
    const t0 = Date.now();
    const s = await downloadBlobs(store, clients, blobs, { parallel: 2, out: quiet, minRate: 20_000, rateWindowMs: 800, backoffMs: 20 });
    expect(Date.now() - t0).toBeLessThan(2 * 800 + 3000);
    expect(s.fetched).toBe(1);
    expect(s.fallbacks).toEqual([
      { sha256: digest, paths: ['components/router.tgz'], url: `${b.url}/blobs/sha256/${digest}`, failed: [expect.objectContaining({ url: `${a.url}/blobs/sha256/${digest}` })] },
    ]);
    expect(await store.stat(digest)).not.toBeNull();
  }, 15_000);

  it('a cache that lies and drops the connection does not get the good cache blamed', async () => {
    serve(a, { kind: 'lie', at: 100_000 });
    serve(b);
    const s = await downloadBlobs(store, clients, blobs, { parallel: 1, out: quiet, retries: 2, backoffMs: 20 });
    expect(s.fetched).toBe(1);
    expect(s.fallbacks[0]!.failed.map((f) => f.url)).toEqual([`${a.url}/blobs/sha256/${digest}`]);
    expect(b.requests.map((r) => r.headers.range ?? 'whole')).toEqual(['bytes=100000-', 'whole']);
  }, 15_000);

  it('when every cache fails, the error names each one and why', async () => {
    serve(a, { kind: 'status', status: 403 });
    const err = await downloadBlobs(store, clients, blobs, { parallel: 1, out: quiet, backoffMs: 20 }).catch((e: unknown) => e);
    // the code is the last cache's (this one does not hold the blob); the message names both
    expect(err).toMatchObject({ code: 'ENOTFOUND', details: { urls: [{ code: 'EUPSTREAM' }, { code: 'ENOTFOUND' }] } });
    expect(String((err as Error).message)).toContain(`${a.url}/blobs/sha256/${digest}: upstream answered 403`);
    expect(String((err as Error).message)).toContain(`${b.url}/blobs/sha256/${digest}: upstream answered 404`);
    expect(await store.stat(digest)).toBeNull();
  });
});
