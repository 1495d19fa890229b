/**
 * Riding out a cache that is briefly away: behind a load balancer with no
 * live replica for a moment (a rolling restart, health checks failing under
 * load) a node gets 503s, 502s, 504s, refused or reset connections. Those,
 * and only those, are waited out: capped exponential backoff with jitter
 * (or the cache's Retry-After), one line per wait, for at most `budgetMs`
 * per outage (the clock restarts once the cache answers again). Anything
 * else (a 404 of a blob the manifest names, another 4xx, wrong bytes) is
 * the answer and is thrown at once; so is the last transient failure when
 * the budget is spent, naming the cache and what it answered.
 */
import { AirlockError, toAirlockError } from '../manifests/errors.js';
import type { Output } from '../common/output.js';

export interface CacheWaitOptions {
  /** how long one outage may last before the run gives up (0: it gives up at once, as without waiting) */
  budgetMs: number;
  out: Output;
  /** the first wait (default 1 s), doubled after each one up to `capMs` (default 30 s), then jittered */
  firstMs?: number;
  capMs?: number;
  /** seams for tests */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  random?: () => number;
}

export interface CacheWaiter {
  /** the cache answered: the next outage gets the whole budget again */
  ok(): void;
  /**
   * After `e` (what the last of `caches` answered): resolves after one wait
   * when `e` is transient and time is left; otherwise throws `e`.
   */
  wait(e: unknown, caches: readonly string[]): Promise<void>;
}

const GATEWAY_STATUS = new Set([502, 503, 504]);
/** a refused connection, or one cut by a reset (before or in the middle of a body) */
const CONNECTION: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'refused the connection',
  ECONNRESET: 'reset the connection',
  ECONNABORTED: 'reset the connection',
  EPIPE: 'reset the connection',
  ERR_STREAM_PREMATURE_CLOSE: 'reset the connection',
  'short body': 'closed the connection before the end of a body',
};

/** What a cache answered, when it is a moment's absence worth waiting out ("answered 503"), or null. */
export function transientAnswer(e: AirlockError): string | null {
  if (e.code !== 'EUPSTREAM' || e.details.aborted === true) return null;
  const status = e.details.status;
  if (typeof status === 'number') return GATEWAY_STATUS.has(status) ? `answered ${status}` : null;
  const cause = e.details.cause;
  return typeof cause === 'string' ? (CONNECTION[cause] ?? null) : null;
}

/** 8 s, 1m 12s, 2h 5m: what a person reads in a wait line. */
export function humanWait(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  const m = Math.floor(s / 60);
  return `${Math.floor(m / 60)}h${m % 60 ? ` ${m % 60}m` : ''}`;
}

/** The cache among `caches` that a failed URL belongs to (its origin when none does). */
function cacheOf(e: AirlockError, caches: readonly string[]): string {
  const url = typeof e.details.url === 'string' ? e.details.url : '';
  const base = caches.find((c) => url === c || url.startsWith(`${c}/`));
  if (base) return base;
  try {
    return new URL(url).origin;
  } catch {
    return caches[caches.length - 1] ?? 'the cache';
  }
}

export function cacheWaiter(opts: CacheWaitOptions): CacheWaiter {
  const now = opts.now ?? Date.now;
  const random = opts.random ?? Math.random;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const firstMs = opts.firstMs ?? 1000;
  const capMs = opts.capMs ?? 30_000;
  // the start of the current outage and the waits in it
  let since: number | null = null;
  let waits = 0;
  return {
    ok() {
      since = null;
      waits = 0;
    },
    async wait(e, caches) {
      const error = toAirlockError(e);
      const answer = transientAnswer(error);
      if (answer === null) throw error;
      const t = now();
      since ??= t;
      const left = opts.budgetMs - (t - since);
      // less than half a second left is not worth another line: the budget is spent
      if (left < 500) {
        if (opts.budgetMs <= 0) throw error;
        throw new AirlockError(
          error.code,
          `${error.message} (the cache did not come back within ${humanWait(opts.budgetMs)}; --wait-for-cache or cache_wait to wait longer)`,
          { ...error.details, waitedMs: t - since },
          { cause: error },
        );
      }
      const retryAfter = error.details.retryAfterMs;
      // equal jitter: half the step fixed, half random, so that nodes refused together do not come back together
      const step = Math.min(capMs, firstMs * 2 ** waits);
      const backoff = step / 2 + random() * (step / 2);
      const delay = Math.min(left, typeof retryAfter === 'number' && retryAfter >= 0 ? retryAfter : backoff);
      waits++;
      const cache = cacheOf(error, caches);
      opts.out.warn(`cache ${cache} ${answer}; trying again in ${humanWait(delay)} (${humanWait(left)} left)`, {
        cache,
        code: error.code,
        status: error.details.status ?? null,
        cause: error.details.cause ?? null,
        waitMs: Math.round(delay),
        leftMs: Math.round(left),
      });
      await sleep(delay);
    },
  };
}
