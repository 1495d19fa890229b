/**
 * download.ts without a network: the cache is storage's in-memory fetcher
 * behind a CacheClient, staging a real store on a temp dir. A node's share
 * (plan.ts) lands in staging, a reset resumes from the partial bytes, wrong
 * bytes keep nothing, and what is staged is not fetched again.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { downloadBlobs } from '../../client/download.js';
import { neededBlobs, selectArtifacts } from '../../client/plan.js';
import type { CacheClient } from '../../client/remote.js';
import { statePaths, writeStateFile, envelopeFile } from '../../client/state.js';
import { nodeStatus } from '../../client/status.js';
import { cachePath } from '../../common/cache-api.js';
import { generateKey, type Artifact } from '../../manifests/index.js';
import { memoryFetcher, type MemoryFault, type MemoryFetcher } from '../../storage/fetch/memory.js';
import { openStore, type Store } from '../../storage/index.js';
import { releaseManifest, sha256, signManifest } from '../support/release.js';
import { failure, quiet } from './install/hostile.js';

const BASE = 'http://cache.invalid:7070';
const url = (hex: string): string => BASE + cachePath.blob(hex);

/** Deterministic bytes of a given size (a different pattern per seed). */
const bytes = (size: number, seed: number): Buffer => Buffer.from(Array.from({ length: size }, (_, i) => (i * 31 + seed * 7) % 251));

const router = bytes(300_000, 1);
const dea = bytes(200_000, 2);
const common = bytes(50_000, 3);
const layer = bytes(120_000, 4);
const imageManifest = Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [sha256(layer)] }));

const artifacts: Artifact[] = [
  { kind: 'file', path: 'components/router.tgz', sha256: sha256(router), size: router.length, urls: [], roles: ['router'] },
  { kind: 'file', path: 'components/dea.tgz', sha256: sha256(dea), size: dea.length, urls: [], roles: ['dea'] },
  { kind: 'file', path: 'components/common.tgz', sha256: sha256(common), size: common.length, urls: [] },
  { kind: 'oci-image', path: 'images/router', image: 'registry.invalid/router:1', sha256: sha256(imageManifest), size: imageManifest.length, blobs: [{ sha256: sha256(layer), size: layer.length }], roles: ['router'] },
];
const manifest = releaseManifest({ release: '1.0.0', serial: 1, artifacts });

let fetcher: MemoryFetcher;
let cache: CacheClient;
let stateDir: string;
let staging: Store;

/** The cache node: every blob of the release by URL; `faults` per blob digest. */
function serve(faults: Record<string, MemoryFault[]> = {}): void {
  const files: Record<string, Uint8Array> = {};
  for (const b of [router, dea, common, layer, imageManifest]) files[url(sha256(b))] = b;
  fetcher = memoryFetcher(files, Object.fromEntries(Object.entries(faults).map(([hex, f]) => [url(hex), f])));
  cache = {
    base: BASE,
    fetcher,
    blobUrl: url,
    releases: async () => [],
    manifest: async () => Buffer.alloc(0),
    close: () => {},
  };
}

beforeEach(async () => {
  stateDir = join(mkdtempSync(join(tmpdir(), 'airlock-node-dlmem-')), 'state');
  staging = await openStore({ cacheDir: statePaths(stateDir).staging, write: true });
  serve();
});
afterEach(() => staging.close());

const share = (roles: string[]) => neededBlobs(selectArtifacts(manifest, roles));
const opts = { parallel: 2, out: quiet, backoffMs: 1 };

describe('downloadBlobs into staging, from an in-memory cache', () => {
  it("a router node's share: its artifacts, the image's layer and the artifacts for every node; nothing of another role", async () => {
    const blobs = share(['router']);
    const s = await downloadBlobs(staging, cache, blobs, opts);
    const want = [router, common, imageManifest, layer];
    expect(s).toMatchObject({ blobs: 4, fetched: 4, alreadyStaged: 0, bytesResumed: 0, fallbacks: [] });
    expect(s.bytesTransferred).toBe(want.reduce((n, b) => n + b.length, 0));
    expect(fetcher.calls.map((c) => c.url).sort()).toEqual(want.map((b) => url(sha256(b))).sort());
    for (const b of want) expect(await staging.stat(sha256(b))).not.toBeNull();
    expect(await staging.stat(sha256(dea))).toBeNull();
  });

  it('what is staged already is not fetched again', async () => {
    await downloadBlobs(staging, cache, share(['dea']), opts);
    const calls = fetcher.calls.length;
    const s = await downloadBlobs(staging, cache, share(['dea']), opts);
    expect(s).toMatchObject({ blobs: 2, fetched: 0, alreadyStaged: 2, bytesTransferred: 0 });
    expect(fetcher.calls.length).toBe(calls);
  });

  it('a connection reset mid-blob resumes from the partial bytes with an offset, not from 0', async () => {
    serve({ [sha256(router)]: [{ kind: 'reset', after: 100_000 }] });
    const s = await downloadBlobs(staging, cache, share(['router']).filter((b) => b.sha256 === sha256(router)), { ...opts, parallel: 1 });
    expect(s).toMatchObject({ fetched: 1 });
    const routerCalls = fetcher.calls.filter((c) => c.url === url(sha256(router)));
    expect(routerCalls.map((c) => [c.offset, c.sent])).toEqual([
      [0, 100_000],
      [100_000, router.length - 100_000],
    ]);
    expect(await staging.stat(sha256(router))).toMatchObject({ size: router.length });
  });

  it('a cache that goes away mid-blob: EUPSTREAM with the partial kept; the next run resumes it (bytesResumed)', async () => {
    const only = share(['router']).filter((b) => b.sha256 === sha256(router));
    serve({ [sha256(router)]: [{ kind: 'reset', after: 100_000 }, ...Array.from({ length: 5 }, (): MemoryFault => ({ kind: 'status', status: 503 }))] });
    const err = await failure(downloadBlobs(staging, cache, only, { ...opts, parallel: 1, retries: 2 }));
    expect(err).toMatchObject({ code: 'EUPSTREAM', details: { paths: ['components/router.tgz'] } });
    expect(await staging.stat(sha256(router))).toBeNull();

    serve();
    const s = await downloadBlobs(staging, cache, only, opts);
    expect(s).toMatchObject({ fetched: 1, bytesResumed: 100_000, bytesTransferred: router.length - 100_000 });
    expect(fetcher.calls.map((c) => [c.offset, c.sent])).toEqual([[100_000, router.length - 100_000]]);
    expect(await staging.stat(sha256(router))).toMatchObject({ size: router.length });
  });

  it('bytes that are not the signed ones: EINTEGRITY naming the artifact, nothing of that blob kept', async () => {
    const forged = Buffer.from(common);
    forged[1234] ^= 0xff;
    serve({ [sha256(common)]: [{ kind: 'body', bytes: forged }, { kind: 'body', bytes: forged }, { kind: 'body', bytes: forged }, { kind: 'body', bytes: forged }] });
    const err = await failure(downloadBlobs(staging, cache, share(['gateway']), opts));
    expect(err).toMatchObject({ code: 'EINTEGRITY' });
    expect((err as Error).message).toContain('components/common.tgz');
    expect(await staging.stat(sha256(common))).toBeNull();
    expect(readdirSync(join(statePaths(stateDir).staging, 'partial')).filter((f) => f.startsWith(sha256(common)))).toEqual([]);
  });

  it('airlock-node status then counts the staged share of the release', async () => {
    const state = statePaths(stateDir);
    writeStateFile(envelopeFile(state, '1.0.0'), signManifest(manifest, [generateKey()]));
    await downloadBlobs(staging, cache, share(['dea']), opts);
    await staging.close();
    const { data } = await nodeStatus(stateDir);
    // status counts every blob the release names: the dea node staged its 2 of 5
    expect(data.releases[0]!.staged).toMatchObject({ blobs: 5, present: 2, presentBytes: dea.length + common.length });
    staging = await openStore({ cacheDir: state.staging, write: true });
  });
});
