/**
 * The one pull loop: many blobs into a store, `parallel` at a time, each
 * through ingest (verified before commit, resumable, URL fallback). Both
 * sides use it: `airlock stage` pulling a release from upstream, and
 * `airlock-node` pulling its share from the cache(s).
 *
 * Progress keeps a running total (a blob's chunk changes the total by its
 * delta, never a sum over every blob) and is drawn at most every 100 ms:
 * chunks arrive tens of thousands of times per GiB. A blob with its own way
 * in (an image manifest read whole through the registry) brings `pullWith`.
 */
import { AirlockError, toAirlockError } from '../../manifests/errors.js';
import type { BlobRef } from '../../manifests/types.js';
import type { Fetcher, IngestResult } from '../types.js';
import type { IngestTuning } from './ingest.js';

/** What the loop needs of a store (a Store is one): the content floor does not look up at the store that uses it. */
export interface IngestTarget {
  ingestFromUrls(expected: BlobRef, urls: string[], fetcher: Fetcher, opts?: IngestTuning): Promise<IngestResult>;
}

export interface PullItem {
  sha256: string;
  size: number;
  /** the manifest paths needing this blob, for messages */
  paths: string[];
  /** where to GET it, in order */
  urls: string[];
  /** another way in than `urls` (it must verify before it commits, like ingest) */
  pullWith?: (signal: AbortSignal | undefined) => Promise<IngestResult>;
}

export interface PullDone {
  item: PullItem;
  result: IngestResult;
}

export interface PullFailure {
  item: PullItem;
  error: AirlockError;
}

export interface PullOptions extends Pick<IngestTuning, 'retries' | 'backoffMs' | 'minRate' | 'rateWindowMs' | 'stallMs' | 'maxAttempts'> {
  parallel: number;
  fetcher: Fetcher;
  signal?: AbortSignal;
  /** stop starting new blobs after the first failure (and abort those in flight) */
  failFast?: boolean;
  /** failures with these codes end the pull at once, thrown as they are (e.g. a full disk) */
  fatalCodes?: readonly string[];
  /** bytes of all blobs held so far and the names in flight; at most every 100 ms, and on every start and end */
  onProgress?: (done: number, current: string) => void;
  /** one blob's bytes after each write (what a re-run would resume from) */
  onBlobBytes?: (item: PullItem, bytes: number) => void;
  onRetry?: (item: PullItem, info: { url: string; attempt: number; error: AirlockError }) => void;
  onDone?: (d: PullDone) => void;
  onFailed?: (f: PullFailure) => void;
}

export interface PullReport {
  done: PullDone[];
  failures: PullFailure[];
  /** blobs never started (the signal aborted, or failFast stopped the pull) */
  notStarted: number;
}

const REDRAW_MS = 100;

export async function pullBlobs(store: IngestTarget, items: readonly PullItem[], opts: PullOptions): Promise<PullReport> {
  const report: PullReport = { done: [], failures: [], notStarted: 0 };
  // our own controller: failFast aborts the blobs in flight without touching the caller's signal
  const stop = new AbortController();
  const onAbort = (): void => stop.abort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) stop.abort();

  const perBlob = new Map<string, number>();
  const active = new Map<string, string>();
  let total = 0;
  let drawn = 0;
  const setBytes = (sha256: string, bytes: number): void => {
    total += bytes - (perBlob.get(sha256) ?? 0);
    perBlob.set(sha256, bytes);
  };
  const draw = (force = false): void => {
    if (!opts.onProgress) return;
    const now = Date.now();
    if (!force && now - drawn < REDRAW_MS) return;
    drawn = now;
    const names = [...active.values()];
    opts.onProgress(total, names.slice(0, 3).join(', ') + (names.length > 3 ? ` +${names.length - 3}` : ''));
  };
  const nameOf = (item: PullItem): string => {
    const p = item.paths[0] ?? item.sha256.slice(0, 12);
    return p.slice(p.lastIndexOf('/') + 1);
  };

  let fatal: AirlockError | null = null;
  const one = async (item: PullItem): Promise<void> => {
    active.set(item.sha256, nameOf(item));
    draw(true);
    try {
      const result = item.pullWith
        ? await item.pullWith(stop.signal)
        : await store.ingestFromUrls({ sha256: item.sha256, size: item.size }, item.urls, opts.fetcher, {
            signal: stop.signal,
            retries: opts.retries,
            backoffMs: opts.backoffMs,
            minRate: opts.minRate,
            rateWindowMs: opts.rateWindowMs,
            stallMs: opts.stallMs,
            maxAttempts: opts.maxAttempts,
            onProgress: (p) => {
              setBytes(item.sha256, p.bytes);
              opts.onBlobBytes?.(item, p.bytes);
              draw();
            },
            onRetry: (info) => opts.onRetry?.(item, info),
          });
      setBytes(item.sha256, item.size);
      const d = { item, result };
      report.done.push(d);
      opts.onDone?.(d);
    } catch (e) {
      const error = toAirlockError(e);
      if (opts.fatalCodes?.includes(error.code)) {
        fatal ??= error;
        stop.abort();
        return;
      }
      // a blob cut short by our own stop is not a failure of its own
      if (stop.signal.aborted && !opts.signal?.aborted && report.failures.length > 0) return;
      const f = { item, error };
      report.failures.push(f);
      opts.onFailed?.(f);
      if (opts.failFast) stop.abort();
    } finally {
      active.delete(item.sha256);
      draw(true);
    }
  };

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length && !stop.signal.aborted) await one(items[next++]!);
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.parallel, items.length)) }, worker));
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  if (fatal) throw fatal;
  report.notStarted = items.length - next;
  return report;
}
