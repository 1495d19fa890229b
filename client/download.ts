/**
 * Downloads this node's blobs from the cache(s) into local staging: a small
 * content store under `STATE/staging`, so partial files, Range resume,
 * digest-and-size verification and atomic commit all come from storage/.
 * With several caches, each blob's URL list is one per cache in the order
 * given, and storage's ingest applies the same rules as `airlock stage` to
 * upstream mirrors: a cache too slow (min_rate over rate_window) or failing
 * is left for the next one, resuming from its bytes, and a digest failure on
 * bytes from two caches is retried from 0 before any cache is blamed.
 * Parallel, bounded; the first failure stops new work and is reported
 * (EINTEGRITY for wrong bytes: nothing of that blob is kept; EUPSTREAM when
 * every cache is down: a re-run resumes from the partial files). With a
 * waiter, a failure that is a cache briefly away (503, refused: wait.ts) is
 * waited out instead, and the blobs not yet staged are pulled again,
 * resuming from their partial files.
 */
import { AirlockError } from '../manifests/errors.js';
import type { BlobRef } from '../manifests/types.js';
import { pullBlobs, type Fetcher, type PullReport, type Store, type UrlFailure } from '../storage/index.js';
import type { Output } from '../common/output.js';
import type { CacheClient } from './remote.js';
import type { CacheWaiter } from './wait.js';

export interface DownloadSummary {
  blobs: number;
  fetched: number;
  alreadyStaged: number;
  bytesTransferred: number;
  bytesResumed: number;
  /** blobs for which a cache failed and another one served them */
  fallbacks: Array<{ sha256: string; paths: string[]; url: string | null; failed: UrlFailure[] }>;
}

export interface DownloadOptions {
  parallel: number;
  out: Output;
  /** attempts without progress per cache (default 3) */
  retries?: number;
  backoffMs?: number;
  /** bytes/s over rateWindowMs below which the next cache is tried (storage's defaults: 1 KiB/s over 60 s) */
  minRate?: number;
  rateWindowMs?: number;
  /** one blob's bytes held after each write, and its size (the SIGKILL tests stop the run at a known byte) */
  onBlobBytes?: (bytes: number, size: number) => void;
  /** waits out caches briefly away (none: the first failure ends the download) */
  wait?: CacheWaiter | null;
}

/** One Fetcher over several caches: each blob URL goes to the cache it names. */
function cachesFetcher(caches: readonly CacheClient[]): Fetcher {
  return {
    fetch: (url, opts) => (caches.find((c) => url.startsWith(`${c.base}/`)) ?? caches[0]!).fetcher.fetch(url, opts),
  };
}

export async function downloadBlobs(
  store: Store,
  cacheOrCaches: CacheClient | readonly CacheClient[],
  blobs: ReadonlyArray<BlobRef & { paths: string[] }>,
  opts: DownloadOptions,
): Promise<DownloadSummary> {
  const caches: readonly CacheClient[] = Array.isArray(cacheOrCaches) ? cacheOrCaches : [cacheOrCaches as CacheClient];
  if (caches.length === 0) throw new AirlockError('EUSAGE', 'no cache to download from');
  const total = blobs.reduce((n, b) => n + b.size, 0);
  const bar = opts.out.progress('download', total);
  const summary: DownloadSummary = { blobs: blobs.length, fetched: 0, alreadyStaged: 0, bytesTransferred: 0, bytesResumed: 0, fallbacks: [] };
  const staged = new Set<string>();
  // the most bytes each blob held so far: a round that added any was the cache answering again
  const held = new Map<string, number>();
  let pending = blobs;
  try {
    for (;;) {
      // bytes of blobs staged in earlier rounds, for the bar
      const before = blobs.reduce((n, b) => n + (staged.has(b.sha256) ? b.size : 0), 0);
      let progressed = false;
      const report: PullReport = await pullBlobs(
        store,
        pending.map((b) => ({ sha256: b.sha256, size: b.size, paths: b.paths, urls: caches.map((c) => c.blobUrl(b.sha256)) })),
        {
          parallel: opts.parallel,
          fetcher: caches.length === 1 ? caches[0]!.fetcher : cachesFetcher(caches),
          // one failure ends the run: the node's share is all or nothing, and a re-run resumes from the partial files
          failFast: true,
          retries: opts.retries ?? 3,
          backoffMs: opts.backoffMs,
          minRate: opts.minRate,
          rateWindowMs: opts.rateWindowMs,
          onProgress: (done, current) => bar.update(before + done, { current }),
          onBlobBytes: (item, bytes) => {
            if (bytes > (held.get(item.sha256) ?? 0)) {
              held.set(item.sha256, bytes);
              progressed = true;
            }
            opts.onBlobBytes?.(bytes, item.size);
          },
          onRetry: (item, { attempt, error }) => opts.out.warn(`${item.paths[0]}: retry ${attempt} after: ${error.message}`),
          onDone: ({ item, result: r }) => {
            staged.add(item.sha256);
            if (r.fetched) {
              summary.fetched++;
              progressed = true;
            } else summary.alreadyStaged++;
            summary.bytesTransferred += r.transferred;
            summary.bytesResumed += r.resumedFrom;
            const failed = r.failed ?? [];
            if (failed.length > 0) {
              summary.fallbacks.push({ sha256: item.sha256, paths: item.paths, url: r.url ?? null, failed });
              opts.out.warn(`${item.paths[0]}: from ${r.url} after ${failed.map((f) => `${f.url} failed (${f.code})`).join(', ')}`, {
                sha256: item.sha256,
                url: r.url,
                failed,
              });
            }
            opts.out.event('staged', {
              sha256: item.sha256,
              size: item.size,
              paths: item.paths,
              fetched: r.fetched,
              transferred: r.transferred,
              resumedFrom: r.resumedFrom,
              url: r.url ?? null,
              failed,
            });
          },
        },
      );
      const first = report.failures[0];
      if (!first) return summary;
      const { item, error } = first;
      const failure = new AirlockError(error.code, `${item.paths.join(', ')}: ${error.message}`, { ...error.details, paths: item.paths, sha256: item.sha256 }, { cause: error });
      if (!opts.wait) throw failure;
      if (progressed) opts.wait.ok();
      // throws the failure unless the cache was only away for a moment and time is left
      await opts.wait.wait(failure, caches.map((c) => c.base));
      pending = pending.filter((b) => !staged.has(b.sha256));
    }
  } finally {
    bar.stop();
  }
}
