/**
 * Talking to the cache node (an untrusted mirror: everything it says is
 * checked against the node's own trust root before use). The node reaches
 * the cache directly, never through a site proxy.
 */
import { cachePath, parseReleases, type ReleaseSummary } from '../common/cache-api.js';
import { AirlockError, LIMITS } from '../manifests/index.js';
import { createHttpClient, httpFetcher } from '../storage/fetch/http.js';
import { fetchWhole } from '../storage/fetch/whole.js';
import type { Fetcher } from '../storage/types.js';

export interface CacheClient {
  readonly base: string;
  releases(): Promise<ReleaseSummary[]>;
  manifest(release: string): Promise<Buffer>;
  blobUrl(sha256: string): string;
  readonly fetcher: Fetcher;
  close(): void;
}

export function cacheClient(
  base: string,
  opts: { stallTimeoutMs?: number; answerTimeoutMs?: number; /** extra CA certificates (PEM) for a cache served over TLS */ caFile?: string | null } = {},
): CacheClient {
  // the release list and an envelope: small, on the LAN; two minutes is generous
  const answerMs = opts.answerTimeoutMs ?? 120_000;
  // env {} : no site proxy between a node and its cache on the LAN
  const http = createHttpClient({
    env: {},
    proxy: null,
    caFile: opts.caFile ?? null,
    peer: 'cache',
    stallTimeoutMs: opts.stallTimeoutMs ?? 30_000,
    connectTimeoutMs: 10_000,
  });
  return {
    base,
    async releases() {
      const url = base + cachePath.releases();
      return parseReleases(await fetchWhole(http, url, { cap: 16 * 1024 * 1024, deadlineMs: answerMs, what: 'cache' }), url);
    },
    manifest(release) {
      return fetchWhole(http, base + cachePath.manifest(release), { cap: LIMITS.envelopeBytes, deadlineMs: answerMs, what: 'cache' });
    },
    blobUrl: (sha256) => base + cachePath.blob(sha256),
    fetcher: httpFetcher(http),
    close: () => http.close(),
  };
}

/**
 * The newest ready release: highest serial (the cache's word, checked by the
 * signature afterwards), of the product this node runs when it runs one.
 * Serials of different products do not compare: several products and no
 * installed one means the operator must say which.
 */
export function newestReady(list: ReleaseSummary[], cache: string, product: string | null = null): string {
  const ready = list.filter((r) => r.ready && (!product || r.product === product)).sort((a, b) => b.serial - a.serial);
  const products = new Set(ready.map((r) => r.product));
  if (products.size > 1) {
    throw new AirlockError('EUSAGE', `cache ${cache} holds ready releases of several products (${[...products].join(', ')}); pass --release`, { cache });
  }
  if (!ready[0]) {
    throw new AirlockError('ENOTFOUND', `cache ${cache} has no ready release (${list.length} staged, none complete); pass --release or stage one`, {
      cache,
    });
  }
  return ready[0].release;
}
