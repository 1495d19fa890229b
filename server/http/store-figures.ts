/**
 * The store's figures for /metrics: blob count and bytes (a walk of the
 * blob backend: one listing with sizes where the backend gives them, as
 * S3's paginated ListObjectsV2 does, else a stat per blob), free disk on
 * cache_dir's filesystem, and which releases are ready. A walk of a large store is not free, so a scrape never waits for
 * one after the first: figures older than `maxAgeMs` (default 30 s) are
 * answered as they are while one refresh runs in the background.
 */
import type { Store } from '../../storage/index.js';
import { freeDiskBytes } from '../../storage/support/probe.js';
import type { CatalogSource } from './catalog.js';
import type { StoreFigures } from './metrics.js';

export function storeFigures(
  store: Store,
  catalog: CatalogSource,
  opts: { maxAgeMs?: number; clock?: () => number } = {},
): () => Promise<StoreFigures> {
  const maxAge = opts.maxAgeMs ?? 30_000;
  const clock = opts.clock ?? Date.now;
  let last: { at: number; figures: StoreFigures } | null = null;
  let running: Promise<StoreFigures> | null = null;

  const measure = async (): Promise<StoreFigures> => {
    let bytes = 0;
    let blobs = 0;
    const backend = store.backend;
    if (backend.listSized) {
      for await (const blob of backend.listSized()) {
        bytes += blob.size;
        blobs++;
      }
    } else {
      for await (const digest of backend.list()) {
        const st = await store.stat(digest);
        if (!st) continue; // removed by gc while we walked
        bytes += st.size;
        blobs++;
      }
    }
    const diskFree = await freeDiskBytes(store.cacheDir).then(
      (d) => d.free,
      () => null,
    );
    const releases: Array<{ release: string; ready: boolean }> = [];
    for (const name of (await catalog.get()).releases.keys()) {
      const st = await store.status(name).catch(() => null);
      if (st) releases.push({ release: name, ready: st.ready });
    }
    return { bytes, blobs, diskFree, releases };
  };

  const refresh = (): Promise<StoreFigures> =>
    (running ??= measure()
      .then((figures) => {
        last = { at: clock(), figures };
        return figures;
      })
      .finally(() => {
        running = null;
      }));

  return async () => {
    if (!last) return refresh();
    if (clock() - last.at >= maxAge) void refresh().catch(() => {});
    return last.figures;
  };
}
