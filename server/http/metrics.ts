/**
 * Prometheus metrics of one server instance (its own registry, so several
 * servers in one process — tests — do not collide). Routes are labelled by
 * name, never by raw path, to keep the label set small.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { pumpStats } from './pump-file.js';
import { pumpUrlStats } from './pump-url.js';

export interface Metrics {
  registry: Registry;
  hit(route: string): void;
  miss(route: string): void;
  /** a blob GET answered with a 307 to the object store (redirect_blobs) */
  redirected(route: string): void;
  /** call when a request starts; the returned function once when its response is done */
  start(): (route: string, method: string, status: number, bytesOut: number, seconds: number) => void;
  /** the listening server's open connections (read at scrape time) and its cap */
  watchConnections(open: () => Promise<number>, max: number): void;
  /** a connection closed at accept because the cap was reached */
  refused(): void;
  /** a connection the server cut on its own: a timeout or a request it could not parse */
  cut(reason: CutReason): void;
  /** the store's size, free disk and ready releases, read at scrape time (store-figures.ts caches them) */
  watchStore(read: () => Promise<StoreFigures>): void;
  /** the in-process staging counters (stage-job.ts), read at scrape time */
  watchStaging(read: () => StagingCounts | undefined): void;
}

export interface StoreFigures {
  /** bytes and number of the verified blobs in the store */
  bytes: number;
  blobs: number;
  /** free bytes on cache_dir's filesystem; null when it could not be measured */
  diskFree: number | null;
  /** every stored release: are all its blobs present? */
  releases: ReadonlyArray<{ release: string; ready: boolean }>;
}

/** What POST /stage runs have done since the server started. */
export interface StagingCounts {
  /** bytes that crossed the wire into the store */
  bytes: number;
  /** files fetched and verified */
  files: number;
  /** failed runs by error code */
  failures: Readonly<Record<string, number>>;
}

/**
 * prom-client's process and Node.js metrics, minus `nodejs_active_{handles,requests,resources}_total`:
 * gauges whose `_total` suffix promises a counter (`promtool check metrics` refuses them). The same
 * figures stay available as `sum(nodejs_active_handles)` etc.
 */
const NOT_COUNTERS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export type CutReason = 'request_timeout' | 'bad_request' | 'idle';

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics) {
    collectDefaultMetrics({ register: registry });
    for (const name of NOT_COUNTERS) registry.removeSingleMetric(name);
  }
  const requests = new Counter({
    name: 'airlock_http_requests_total',
    help: 'HTTP requests answered, by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const bytesOut = new Counter({
    name: 'airlock_http_response_bytes_total',
    help: 'Response body bytes sent, by route',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const inFlight = new Gauge({
    name: 'airlock_http_requests_in_flight',
    help: 'Requests being answered right now',
    registers: [registry],
  });
  new Gauge({
    name: 'airlock_body_buffer_bytes',
    help: 'Memory of body buffers (files, and blobs read from the object store): held by responses being sent (in_use) and kept for the next ones (pooled)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const p = pumpStats();
      const u = pumpUrlStats();
      this.set({ state: 'in_use' }, p.inUseBytes + u.inUseBytes);
      this.set({ state: 'pooled' }, p.pooledBytes + u.pooledBytes);
    },
  });
  new Gauge({
    name: 'airlock_object_store_sockets',
    help: "Sockets to the object store's gateway that serve reads blob bodies on: streaming one (busy) or kept for the next (idle)",
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const u = pumpUrlStats();
      this.set({ state: 'busy' }, u.sockets - u.idleSockets);
      this.set({ state: 'idle' }, u.idleSockets);
    },
  });
  const hits = new Counter({
    name: 'airlock_cache_hits_total',
    help: 'Requests answered from the store, by route',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const misses = new Counter({
    name: 'airlock_cache_misses_total',
    help: 'Requests for something the store does not hold, by route',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const redirects = new Counter({
    name: 'airlock_blob_redirects_total',
    help: 'Blob and file GETs answered with a 307 to a presigned URL in the object store (redirect_blobs), by route',
    labelNames: ['route'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'airlock_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by route',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [registry],
  });
  let openConnections: () => Promise<number> = () => Promise.resolve(0);
  new Gauge({
    name: 'airlock_http_connections_open',
    help: 'TCP connections the server holds right now',
    registers: [registry],
    async collect() {
      this.set(await openConnections());
    },
  });
  const maxConnections = new Gauge({
    name: 'airlock_http_connections_max',
    help: 'The connection cap (max_connections); connections beyond it are refused at accept',
    registers: [registry],
  });
  const refused = new Counter({
    name: 'airlock_http_connections_refused_total',
    help: 'Connections closed at accept because max_connections were open',
    registers: [registry],
  });
  const cut = new Counter({
    name: 'airlock_http_connections_cut_total',
    help: 'Connections the server cut: request head (or body) not complete in time (request_timeout), unparsable request (bad_request), no byte moving (idle)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  let storeFigures: () => Promise<StoreFigures | null> = () => Promise.resolve(null);
  new Gauge({
    name: 'airlock_store_bytes',
    help: 'Bytes of the verified blobs in the store (measured at most every 30 s)',
    registers: [registry],
    async collect() {
      const f = await storeFigures();
      if (f) this.set(f.bytes);
    },
  });
  new Gauge({
    name: 'airlock_store_blobs',
    help: 'Verified blobs in the store (measured at most every 30 s)',
    registers: [registry],
    async collect() {
      const f = await storeFigures();
      if (f) this.set(f.blobs);
    },
  });
  new Gauge({
    name: 'airlock_disk_free_bytes',
    help: "Free bytes on cache_dir's filesystem for an unprivileged writer (measured at most every 30 s)",
    registers: [registry],
    async collect() {
      const f = await storeFigures();
      if (f?.diskFree !== null && f?.diskFree !== undefined) this.set(f.diskFree);
    },
  });
  new Gauge({
    name: 'airlock_release_ready',
    help: 'A stored release: 1 when every blob it needs is in the store, else 0',
    labelNames: ['release'] as const,
    registers: [registry],
    async collect() {
      const f = await storeFigures();
      this.reset();
      for (const r of f?.releases ?? []) this.set({ release: r.release }, r.ready ? 1 : 0);
    },
  });

  let staging: () => StagingCounts | undefined = () => undefined;
  // counters that follow the stager's own tallies: each scrape adds what happened since the last one
  const seen = { bytes: 0, files: 0, failures: new Map<string, number>() };
  const catchUp = (): StagingCounts | undefined => staging();
  new Counter({
    name: 'airlock_stage_bytes_total',
    help: 'Bytes downloaded into the store by POST /stage runs',
    registers: [registry],
    collect() {
      const c = catchUp();
      if (c && c.bytes > seen.bytes) this.inc(c.bytes - seen.bytes);
      if (c) seen.bytes = Math.max(seen.bytes, c.bytes);
    },
  });
  new Counter({
    name: 'airlock_stage_files_total',
    help: 'Files fetched and verified by POST /stage runs',
    registers: [registry],
    collect() {
      const c = catchUp();
      if (c && c.files > seen.files) this.inc(c.files - seen.files);
      if (c) seen.files = Math.max(seen.files, c.files);
    },
  });
  new Counter({
    name: 'airlock_stage_failures_total',
    help: 'POST /stage runs that failed, by error code (EUPSTREAM, ESIGNATURE, ENOSPACE…)',
    labelNames: ['code'] as const,
    registers: [registry],
    collect() {
      for (const [code, n] of Object.entries(catchUp()?.failures ?? {})) {
        const before = seen.failures.get(code) ?? 0;
        if (n > before) this.inc({ code }, n - before);
        seen.failures.set(code, Math.max(before, n));
      }
    },
  });

  return {
    registry,
    watchStore(read) {
      storeFigures = () => read().catch(() => null);
    },
    watchStaging(read) {
      staging = read;
    },
    watchConnections(open, max) {
      openConnections = open;
      maxConnections.set(max);
    },
    refused: () => refused.inc(),
    cut: (reason) => cut.inc({ reason }),
    hit: (route) => hits.inc({ route }),
    miss: (route) => misses.inc({ route }),
    redirected: (route) => redirects.inc({ route }),
    start() {
      inFlight.inc();
      return (route, method, status, bytes, seconds) => {
        inFlight.dec();
        requests.inc({ route, method, status: String(status) });
        if (bytes > 0) bytesOut.inc({ route }, bytes);
        latency.observe({ route }, seconds);
      };
    },
  };
}
