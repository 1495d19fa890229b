/**
 * Prometheus metrics of one server instance (its own registry, so several
 * servers in one process — tests — do not collide). Routes are labelled by
 * name, never by raw path, to keep the label set small.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { pumpStats } from './pump-file.js';

export interface Metrics {
  registry: Registry;
  hit(route: string): void;
  miss(route: string): void;
  /** call when a request starts; the returned function once when its response is done */
  start(): (route: string, method: string, status: number, bytesOut: number, seconds: number) => void;
  /** the listening server's open connections (read at scrape time) and its cap */
  watchConnections(open: () => Promise<number>, max: number): void;
  /** a connection closed at accept because the cap was reached */
  refused(): void;
  /** a connection the server cut on its own: a timeout or a request it could not parse */
  cut(reason: CutReason): void;
}

export type CutReason = 'request_timeout' | 'bad_request' | 'idle';

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
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
    help: 'Memory of file-body buffers: held by responses being sent (in_use) and kept for the next ones (pooled)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const p = pumpStats();
      this.set({ state: 'in_use' }, p.inUseBytes);
      this.set({ state: 'pooled' }, p.pooledBytes);
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
  return {
    registry,
    watchConnections(open, max) {
      openConnections = open;
      maxConnections.set(max);
    },
    refused: () => refused.inc(),
    cut: (reason) => cut.inc({ reason }),
    hit: (route) => hits.inc({ route }),
    miss: (route) => misses.inc({ route }),
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
