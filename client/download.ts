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
 * every cache is down: a re-run resumes from the partial files).
 */
import { AirlockError, toAirlockError } from '../manifests/errors.js';
import type { BlobRef } from '../manifests/types.js';
import type { Fetcher, Store, UrlFailure } from '../storage/index.js';
import type { Output } from '../storage/support/output.js';
import type { CacheClient } from './remote.js';

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
}

/** One Fetcher over several caches: each blob URL goes to the cache it names. */
function cachesFetcher(caches: readonly CacheClient[]): Fetcher {
  return {
    fetch: (url, opts) => (caches.find((c) => url.startsWith(`${c.base}/`)) ?? caches[0]!).fetcher.fetch(url, opts),
  };
}

/**
 * Test hook: AIRLOCK_NODE_TEST_PAUSE_AT_BYTES=N[:MS]. The first time a blob's
 * partial file holds at least N bytes (and is not yet complete), say so on
 * stderr and block the whole process, forever or for MS ms. Every counted
 * byte is already written (progress fires after the write), so a SIGKILL
 * there, or a cache stopped meanwhile, hits a known point mid-download.
 */
let paused = false;
function pauseAtBytes(bytes: number, size: number): void {
  const spec = process.env.AIRLOCK_NODE_TEST_PAUSE_AT_BYTES;
  if (paused || !spec || bytes >= size) return;
  const [at, ms] = spec.split(':').map(Number);
  if (!(bytes >= at!)) return;
  paused = true;
  process.stderr.write(`airlock-node: test pause at ${bytes} bytes\n`);
  const sab = new Int32Array(new SharedArrayBuffer(4));
  const until = ms === undefined ? Infinity : Date.now() + ms;
  while (Date.now() < until) Atomics.wait(sab, 0, 0, Math.min(1000, until - Date.now()));
}

export async function downloadBlobs(
  store: Store,
  cacheOrCaches: CacheClient | readonly CacheClient[],
  blobs: ReadonlyArray<BlobRef & { paths: string[] }>,
  opts: DownloadOptions,
): Promise<DownloadSummary> {
  const caches: readonly CacheClient[] = Array.isArray(cacheOrCaches) ? cacheOrCaches : [cacheOrCaches as CacheClient];
  if (caches.length === 0) throw new AirlockError('EUSAGE', 'no cache to download from');
  const fetcher = caches.length === 1 ? caches[0]!.fetcher : cachesFetcher(caches);
  const total = blobs.reduce((n, b) => n + b.size, 0);
  const bar = opts.out.progress('download', total);
  const done = new Map<string, number>();
  const summary: DownloadSummary = { blobs: blobs.length, fetched: 0, alreadyStaged: 0, bytesTransferred: 0, bytesResumed: 0, fallbacks: [] };
  const abort = new AbortController();
  let failure: AirlockError | null = null;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!failure && next < blobs.length) {
      const b = blobs[next++]!;
      try {
        const urls = caches.map((c) => c.blobUrl(b.sha256));
        const r = await store.ingestFromUrls({ sha256: b.sha256, size: b.size }, urls, fetcher, {
          signal: abort.signal,
          retries: opts.retries ?? 3,
          backoffMs: opts.backoffMs,
          minRate: opts.minRate,
          rateWindowMs: opts.rateWindowMs,
          onProgress: (p) => {
            done.set(p.digest, p.bytes);
            pauseAtBytes(p.bytes, p.size);
            bar.update([...done.values()].reduce((x, y) => x + y, 0), { current: b.paths[0] });
          },
          onRetry: ({ attempt, error }) => opts.out.warn(`${b.paths[0]}: retry ${attempt} after: ${error.message}`),
        });
        done.set(b.sha256, b.size);
        if (r.fetched) summary.fetched++;
        else summary.alreadyStaged++;
        summary.bytesTransferred += r.transferred;
        summary.bytesResumed += r.resumedFrom;
        const failed = r.failed ?? [];
        if (failed.length > 0) {
          summary.fallbacks.push({ sha256: b.sha256, paths: b.paths, url: r.url ?? null, failed });
          opts.out.warn(`${b.paths[0]}: from ${r.url} after ${failed.map((f) => `${f.url} failed (${f.code})`).join(', ')}`, { sha256: b.sha256, url: r.url, failed });
        }
        opts.out.event('staged', {
          sha256: b.sha256,
          size: b.size,
          paths: b.paths,
          fetched: r.fetched,
          transferred: r.transferred,
          resumedFrom: r.resumedFrom,
          url: r.url ?? null,
          failed,
        });
      } catch (e) {
        const err = toAirlockError(e);
        if (!failure) {
          failure = new AirlockError(err.code, `${b.paths.join(', ')}: ${err.message}`, { ...err.details, paths: b.paths, sha256: b.sha256 }, { cause: err });
          abort.abort();
        }
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.parallel, blobs.length)) }, worker));
  } finally {
    bar.stop();
  }
  if (failure) throw failure;
  return summary;
}
