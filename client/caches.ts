/**
 * Several caches for one node (`--cache URL1,URL2`): small answers (the
 * release list, an envelope) come from the first cache that gives them, and
 * blobs are pulled with one URL per cache, so a cache that is down, too slow
 * or lying is left for the next one, resuming from the bytes already held
 * (storage's ingest rules, the same as `airlock stage` applies to mirrors).
 * When every cache failed for a moment (a 503, a refused connection: see
 * wait.ts), the list is asked again after a wait, within the wait budget.
 * Everything a cache says is verified afterwards all the same.
 */
import { AirlockError, toAirlockError } from '../manifests/errors.js';
import type { Output } from '../common/output.js';
import { cacheClient, type CacheClient } from './remote.js';
import { transientAnswer, type CacheWaiter } from './wait.js';

export interface CachePool {
  readonly clients: readonly CacheClient[];
  /** the bases, for messages */
  readonly names: string;
  /** the first cache's answer; on a network failure or a 404, the next cache's; when all were briefly away, the list again after a wait */
  ask<T>(what: string, f: (c: CacheClient) => Promise<T>): Promise<{ cache: CacheClient; value: T }>;
  close(): void;
}

// worth asking the next cache about; anything else (a malformed answer…) is the answer
const NEXT = new Set(['EUPSTREAM', 'ENOTFOUND']);

export function cachePool(
  bases: readonly string[],
  out: Output,
  make: (base: string) => CacheClient = (b) => cacheClient(b),
  waiter: CacheWaiter | null = null,
): CachePool {
  if (bases.length === 0) throw new AirlockError('EUSAGE', 'no cache: pass --cache URL (e.g. http://cache:7070) or set "cache" in the config');
  const clients = bases.map(make);
  return {
    clients,
    names: bases.join(', '),
    async ask(what, f) {
      for (;;) {
        let last: AirlockError | null = null;
        const failures: AirlockError[] = [];
        for (const [i, cache] of clients.entries()) {
          try {
            const value = await f(cache);
            waiter?.ok();
            return { cache, value };
          } catch (e) {
            last = toAirlockError(e);
            failures.push(last);
            if (!NEXT.has(last.code) || i === clients.length - 1) break;
            out.warn(`${what} from ${cache.base} failed (${last.code}: ${last.message}); trying ${clients[i + 1]!.base}`, { cache: cache.base, code: last.code });
          }
        }
        if (!waiter) throw last!;
        // every cache failed or lacked it: worth waiting when one of them was only away for a moment
        // (a cache that is down may hold what another lacks); wait() throws when it is not, or time is up
        const away = NEXT.has(last!.code) ? (failures.filter((f) => transientAnswer(f) !== null).pop() ?? last!) : last!;
        await waiter.wait(away, bases);
      }
    },
    close() {
      for (const c of clients) c.close();
    },
  };
}
