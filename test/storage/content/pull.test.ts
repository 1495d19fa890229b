import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AirlockError } from '../../../manifests/errors.js';
import { pullBlobs, type PullItem } from '../../../storage/content/pull.js';
import { memoryFetcher } from '../../../storage/fetch/memory.js';
import { openStore, type Store } from '../../../storage/index.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let dir: string;
let store: Store;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-pull-'));
  store = await openStore({ cacheDir: dir, write: true });
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

function world(n: number, size = 300_000): { files: Record<string, Buffer>; items: PullItem[] } {
  const files: Record<string, Buffer> = {};
  const items: PullItem[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = randomBytes(size + i);
    const url = `http://up.test/f${i}`;
    files[url] = bytes;
    items.push({ sha256: sha(bytes), size: bytes.length, paths: [`dir/f${i}.bin`], urls: [url] });
  }
  return { files, items };
}

describe('pullBlobs', () => {
  it('pulls every blob, parallel, with a running total that only grows and ends at the sum', async () => {
    const { files, items } = world(6);
    const seen: number[] = [];
    let inFlightNames = '';
    const report = await pullBlobs(store, items, {
      parallel: 3,
      fetcher: memoryFetcher(files),
      onProgress: (done, current) => {
        seen.push(done);
        if (current) inFlightNames = current;
      },
    });
    expect(report.done).toHaveLength(6);
    expect(report.failures).toEqual([]);
    for (const it of items) expect(await store.stat(it.sha256)).toMatchObject({ size: it.size });
    expect(seen.every((v, i) => i === 0 || v >= seen[i - 1]!)).toBe(true);
    expect(seen.at(-1)).toBe(items.reduce((n, it) => n + it.size, 0));
    expect(inFlightNames).toMatch(/f\d\.bin/);
  });

  it('collects every failure by default; wrong bytes are EINTEGRITY and never stored', async () => {
    const { files, items } = world(4);
    files[items[1]!.urls[0]!] = randomBytes(items[1]!.size);
    delete files[items[2]!.urls[0]!];
    const report = await pullBlobs(store, items, { parallel: 2, fetcher: memoryFetcher(files), retries: 1, backoffMs: 1 });
    expect(report.done.map((d) => d.item.sha256).sort()).toEqual([items[0]!.sha256, items[3]!.sha256].sort());
    expect(report.failures.map((f) => [f.item.paths[0], f.error.code]).sort()).toEqual([
      ['dir/f1.bin', 'EINTEGRITY'],
      ['dir/f2.bin', expect.any(String)],
    ]);
    expect(await store.stat(items[1]!.sha256)).toBeNull();
  });

  it('failFast: the first failure stops new blobs; the ones cut short are not failures of their own', async () => {
    const { files, items } = world(8);
    delete files[items[0]!.urls[0]!];
    const report = await pullBlobs(store, items, { parallel: 1, fetcher: memoryFetcher(files), retries: 1, backoffMs: 1, failFast: true });
    expect(report.failures).toHaveLength(1);
    expect(report.failures[0]!.item.paths).toEqual(['dir/f0.bin']);
    expect(report.done).toHaveLength(0);
    expect(report.notStarted).toBe(7);
  });

  it('a fatal code ends the pull at once and is thrown as it is', async () => {
    const { files, items } = world(3);
    const full: PullItem = { ...items[0]!, pullWith: async () => Promise.reject(new AirlockError('ENOSPACE', 'disk full')) };
    await expect(pullBlobs(store, [full, ...items.slice(1)], { parallel: 1, fetcher: memoryFetcher(files), fatalCodes: ['ENOSPACE'] })).rejects.toMatchObject({
      code: 'ENOSPACE',
    });
  });

  it('a blob with its own way in (pullWith) is taken that way, with the pull signal', async () => {
    const { files, items } = world(2);
    const bytes = Buffer.from('{"schemaVersion":2}');
    let gotSignal = false;
    const manifest: PullItem = {
      sha256: sha(bytes),
      size: bytes.length,
      paths: ['images/app'],
      urls: ['http://nowhere.test/never-asked'],
      pullWith: async (signal) => {
        gotSignal = signal instanceof AbortSignal;
        const r = await store.ingestStream({ sha256: sha(bytes), size: bytes.length }, Readable.from([bytes]));
        return { ...r, transferred: bytes.length, resumedFrom: 0, url: 'registry', failed: [] };
      },
    };
    const fetcher = memoryFetcher(files);
    const report = await pullBlobs(store, [manifest, ...items], { parallel: 2, fetcher });
    expect(report.done).toHaveLength(3);
    expect(gotSignal).toBe(true);
    expect(fetcher.calls.map((c) => c.url)).not.toContain('http://nowhere.test/never-asked');
  });

  it("the caller's abort stops the pull; what was not started is counted", async () => {
    const { files, items } = world(5);
    const ac = new AbortController();
    const report = await pullBlobs(store, items, {
      parallel: 1,
      fetcher: memoryFetcher(files),
      signal: ac.signal,
      onDone: () => ac.abort(),
    });
    expect(report.done).toHaveLength(1);
    expect(report.notStarted).toBe(4);
  });

  it('reports each blob\'s bytes after its writes (the node\'s pause hook)', async () => {
    const { files, items } = world(1, 2 * 1024 * 1024);
    const bytes: number[] = [];
    await pullBlobs(store, items, { parallel: 1, fetcher: memoryFetcher(files), onBlobBytes: (_it, b) => bytes.push(b) });
    expect(bytes.length).toBeGreaterThan(0);
    expect(bytes.at(-1)).toBe(items[0]!.size);
  });
});
