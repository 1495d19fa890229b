/**
 * Downloads this node's blobs from the cache into local staging: a small
 * content store under `STATE/staging`, so partial files, Range resume,
 * digest-and-size verification and atomic commit all come from storage/.
 * Parallel, bounded; the first failure stops new work and is reported
 * (EINTEGRITY for wrong bytes: nothing of that blob is kept; EUPSTREAM when
 * the cache is down: a re-run resumes from the partial files).
 */
import { AirlockError, toAirlockError } from '../manifests/errors.js';
import type { BlobRef } from '../manifests/types.js';
import type { Store } from '../storage/index.js';
import type { Output } from '../storage/support/output.js';
import type { CacheClient } from './remote.js';

export interface DownloadSummary {
  blobs: number;
  fetched: number;
  alreadyStaged: number;
  bytesTransferred: number;
  bytesResumed: number;
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
  cache: CacheClient,
  blobs: ReadonlyArray<BlobRef & { paths: string[] }>,
  opts: { parallel: number; out: Output; retries?: number },
): Promise<DownloadSummary> {
  const total = blobs.reduce((n, b) => n + b.size, 0);
  const bar = opts.out.progress('download', total);
  const done = new Map<string, number>();
  const summary: DownloadSummary = { blobs: blobs.length, fetched: 0, alreadyStaged: 0, bytesTransferred: 0, bytesResumed: 0 };
  const abort = new AbortController();
  let failure: AirlockError | null = null;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (!failure && next < blobs.length) {
      const b = blobs[next++]!;
      try {
        const r = await store.ingestFromUrls({ sha256: b.sha256, size: b.size }, [cache.blobUrl(b.sha256)], cache.fetcher, {
          signal: abort.signal,
          retries: opts.retries ?? 3,
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
        opts.out.event('staged', { sha256: b.sha256, size: b.size, paths: b.paths, fetched: r.fetched, transferred: r.transferred, resumedFrom: r.resumedFrom });
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
