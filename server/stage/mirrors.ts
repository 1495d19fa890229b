/**
 * Tiered caches: `mirrors:` (or `--mirror`) names other airlock caches — a
 * site cache above rack caches — that `airlock stage` asks first for every
 * blob, by digest (`MIRROR/blobs/sha256/HEX`, image manifests included),
 * before the signed upstream URLs.
 *
 * A mirror is on the LAN and is reached directly, never through the site
 * proxy (`proxy`, `http_proxy` and `no_proxy` do not apply to it). It is
 * trusted for nothing: its URL is just the first one ingest tries, so its
 * bytes are verified like any upstream's, and wrong bytes, a 404 or a slow
 * answer move on to the next URL under ingest's usual rules.
 *
 * A mirror that cannot be reached at all (connection refused or timing out,
 * host unreachable, name not resolving) is given up for the rest of the run at its
 * first such failure: the blobs started after that do not list it, so a dead
 * site cache costs one failed connection, not backoff on every blob.
 */
import { createHash } from 'node:crypto';
import { cachePath } from '../../common/cache-api.js';
import { AirlockError, isAirlockError, toAirlockError } from '../../manifests/errors.js';
import { createHttpClient, fetchRange, fetchWhole, type Fetcher, type HttpClient, type HttpClientOptions, type UrlFailure } from '../../storage/index.js';

/** Connection-level failures: the mirror is not there (a 5xx or a reset mid-body is retried as usual); a connect timeout too. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

export interface Mirrors {
  /** the mirror base URLs, in order */
  readonly bases: readonly string[];
  /** the blob's URL on each mirror still reachable in this run, in order */
  urlsFor(sha256: string): string[];
  /** the mirror base a URL belongs to, or null for an upstream URL */
  baseOf(url: string): string | null;
  /** bases given up in this run, with why */
  readonly down: ReadonlyMap<string, string>;
  /** GETs mirror URLs (Range for resume), directly; other URLs are not its business */
  readonly fetcher: Fetcher;
  /** an image manifest by digest from the mirrors, verified; null and the failures when none served it */
  manifest(sha256: string, size: number, signal: AbortSignal | undefined, deadlineMs: number): Promise<{ body: Buffer; url: string; failed: UrlFailure[] } | { body: null; failed: UrlFailure[] }>;
  close(): void;
}

export interface MirrorOptions {
  caFile?: string | null;
  /** from the stage's http settings: stallTimeoutMs, connectTimeoutMs (default 10 s here) and dnsLookup apply (never the proxy) */
  http?: Partial<HttpClientOptions>;
  /** called once per mirror given up */
  onDown?: (base: string, reason: string) => void;
}

export function openMirrors(bases: readonly string[], opts: MirrorOptions = {}): Mirrors {
  const down = new Map<string, string>();
  let client: HttpClient | null = null;
  const http = (): HttpClient =>
    (client ??= createHttpClient({
      // env {} and no proxy: a mirror is another cache on the LAN, reached directly
      env: {},
      proxy: null,
      caFile: opts.caFile ?? null,
      peer: 'mirror',
      connectTimeoutMs: opts.http?.connectTimeoutMs ?? 10_000,
      stallTimeoutMs: opts.http?.stallTimeoutMs,
      dnsLookup: opts.http?.dnsLookup,
    }));
  const prefix = (base: string): string => `${base}/blobs/sha256/`;
  const baseOf = (url: string): string | null => bases.find((b) => url.startsWith(prefix(b))) ?? null;

  /** Gives the mirror up when the failure says it is not there; returns the error to throw (not retried then). */
  const judge = (base: string, e: unknown): AirlockError => {
    const err = toAirlockError(e);
    // got's TimeoutError says which phase timed out: no TCP connection in connectTimeoutMs is a host that drops packets
    const phase = (err.cause as { event?: unknown } | undefined)?.event;
    const cause = err.details.cause;
    const unreachable = typeof cause === 'string' && (UNREACHABLE.has(cause) || (cause === 'ETIMEDOUT' && (phase === 'connect' || phase === 'lookup')));
    if (err.code === 'EUPSTREAM' && unreachable) {
      if (!down.has(base)) {
        down.set(base, err.message);
        opts.onDown?.(base, err.message);
      }
      return new AirlockError('EUPSTREAM', `${err.message} (mirror ${base} given up for this run)`, { ...err.details, mirror: base, retryable: false });
    }
    if (err.code === 'ENOTFOUND' && typeof err.details.url === 'string') {
      return new AirlockError('ENOTFOUND', `${err.details.url}: not on mirror ${base} (${err.details.status ?? 404})`, { ...err.details, mirror: base });
    }
    return err;
  };

  const fetcher: Fetcher = {
    async fetch(url, o) {
      const base = baseOf(url);
      if (!base) throw new AirlockError('EINTERNAL', `${url} is not a mirror URL`, { url });
      const gone = down.get(base);
      if (gone !== undefined) {
        throw new AirlockError('EUPSTREAM', `${url}: mirror ${base} was given up earlier in this run (${gone})`, { url, mirror: base, retryable: false });
      }
      try {
        return await fetchRange(url, o, (offset) => http().request(url, { offset, maxLength: o.maxLength, signal: o.signal }));
      } catch (e) {
        throw judge(base, e);
      }
    },
  };

  return {
    bases,
    down,
    baseOf,
    fetcher,
    urlsFor: (sha256) => bases.filter((b) => !down.has(b)).map((b) => b + cachePath.blob(sha256)),
    async manifest(sha256, size, signal, deadlineMs) {
      const failed: UrlFailure[] = [];
      for (const base of bases) {
        if (down.has(base)) continue;
        const url = base + cachePath.blob(sha256);
        try {
          let body: Buffer;
          try {
            body = await fetchWhole(http(), url, { cap: size, deadlineMs, what: 'mirror', signal });
          } catch (e) {
            // an answer above the signed size is wrong bytes, as ingest calls it
            if (isAirlockError(e) && e.code === 'EMANIFEST') throw new AirlockError('EINTEGRITY', `${url}: more than the expected ${size} bytes`, { url });
            throw judge(base, e);
          }
          const found = createHash('sha256').update(body).digest('hex');
          if (found !== sha256 || body.length !== size) {
            throw new AirlockError('EINTEGRITY', `${url}: got sha256:${found} (${body.length} bytes), expected sha256:${sha256} (${size} bytes)`, { url });
          }
          return { body, url, failed };
        } catch (e) {
          if (signal?.aborted) throw e;
          const err = toAirlockError(e);
          failed.push({ url, code: err.code, reason: err.message, attempts: 1 });
        }
      }
      return { body: null, failed };
    },
    close: () => client?.close(),
  };
}
