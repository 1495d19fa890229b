/**
 * `airlock serve --workers N`: N server processes on one listening socket
 * (node:cluster; the primary accepts and hands connections round-robin), so
 * a cache node uses every core.
 *
 * The primary serves nothing itself: it starts the workers, forwards
 * SIGTERM/SIGINT (a graceful stop, then a cut on the second signal, as in
 * one process) and SIGHUP (re-read cache_dir) to them over IPC, replaces a
 * worker that died while serving, and exits once every worker has: 0 after
 * a stop, or the exit status of a worker that could not start (2 for an
 * address in use).
 *
 * /metrics on any worker answers the whole server: the worker asks the
 * primary, which sums every worker's registry (prom-client's cluster
 * aggregation: counters, histograms and gauges summed, so
 * airlock_http_connections_max is the caps of all workers together and
 * process_cpu_seconds_total their CPU together; the store's own figures,
 * the same for every worker, are not summed: the largest size, blob count
 * and readiness, the least free disk).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import { AirlockError } from '../../manifests/errors.js';
import type { Metrics } from './metrics.js';

type ToWorker = { airlock: 'stop' | 'cut' | 'reload' } | { airlock: 'metrics'; id: number; text: string | null };
type ToPrimary = { airlock: 'metrics'; id: number };

/** --workers: a count from 1 to 64, or `auto` (one per core) */
export function workerCount(text: string | undefined): number {
  if (text === undefined) return 1;
  if (text === 'auto') return Math.min(64, availableParallelism());
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new AirlockError('EUSAGE', `--workers must be an integer from 1 to 64 or "auto", got "${text}"`);
  return n;
}

export const isWorker = (): boolean => cluster.isWorker;

/** a worker that dies this soon after starting is not replaced (it would only die again) */
const QUICK_DEATH_MS = 5000;

/** The primary: runs until every worker has exited; resolves with the exit status. */
export function runPrimary(n: number, logger: Logger): Promise<number> {
  const aggregator = new AggregatorRegistry();
  const started = new Map<Worker, number>();
  let stopping = false;
  let failed: number | null = null;
  const fork = (): void => {
    const w = cluster.fork();
    started.set(w, Date.now());
    // a worker that died while the primary wrote to it (a handed connection): its exit is what counts
    w.on('error', () => {});
    w.on('message', (m: ToPrimary) => {
      if (m?.airlock !== 'metrics') return;
      aggregator.clusterMetrics().then(
        (text) => send(w, { airlock: 'metrics', id: m.id, text }),
        () => send(w, { airlock: 'metrics', id: m.id, text: null }),
      );
    });
  };
  const all = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => Boolean(w));
  const tellAll = (m: ToWorker): void => all().forEach((w) => send(w, m));

  return new Promise((resolve) => {
    cluster.on('exit', (w, code, signal) => {
      const lived = Date.now() - (started.get(w) ?? 0);
      started.delete(w);
      if (!stopping) {
        if (lived < QUICK_DEATH_MS || failed !== null) {
          // could not start (address in use, unreadable cache): stop the others and report it
          failed ??= code || 1;
          logger.error({ pid: w.process.pid, code, signal }, 'worker could not start: stopping');
          stopping = true;
          tellAll({ airlock: 'stop' });
        } else {
          logger.error({ pid: w.process.pid, code, signal }, 'worker died: starting another');
          fork();
        }
      }
      if (all().length === 0 && started.size === 0) resolve(failed ?? 0);
    });
    const stop = (signal: string): void => {
      const cut = stopping;
      stopping = true;
      logger.info({ signal, workers: all().length }, cut ? 'second signal: workers cut their connections' : 'stopping the workers');
      tellAll({ airlock: cut ? 'cut' : 'stop' });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => tellAll({ airlock: 'reload' }));
    for (let i = 0; i < n; i++) fork();
    logger.info({ workers: n }, 'started workers');
  });
}

function send(w: Worker, m: ToWorker): void {
  if (w.isConnected()) w.send(m, (e: Error | null) => void e);
}

/**
 * In a worker: the primary's stop (`cut` false) and cut (`cut` true); a
 * reload from the primary becomes a SIGHUP to this process (whose handler
 * re-reads cache_dir). No-op outside a cluster.
 */
export function onPrimaryStop(handler: (cut: boolean) => void): void {
  if (!cluster.isWorker) return;
  process.on('message', (m: ToWorker) => {
    if (m?.airlock === 'stop' || m?.airlock === 'cut') handler(m.airlock === 'cut');
    else if (m?.airlock === 'reload') process.kill(process.pid, 'SIGHUP');
  });
}

/**
 * Runs a worker's serve action and lets go of the primary when it ends, after
 * a stop or a failure (address in use): the line to the primary would
 * otherwise keep the process alive. Only the action as it is outside a cluster.
 */
export function inCluster<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args) => {
    try {
      return await fn(...args);
    } finally {
      if (cluster.isWorker && cluster.worker?.isConnected()) cluster.worker.disconnect();
    }
  };
}

/** metrics of the store, the same in every worker (read at different moments): how to make one of them */
const PER_STORE: Record<string, string> = {
  airlock_store_bytes: 'max',
  airlock_store_blobs: 'max',
  airlock_disk_free_bytes: 'min',
  airlock_release_ready: 'max',
};

/** In a worker: /metrics answers every worker's metrics summed (asked of the primary); its own when the primary does not answer within 5 s. */
export function shareMetrics(metrics: Metrics): void {
  if (!cluster.isWorker) return;
  // figures of the one store every worker reads are not summed: each worker reports the same store
  for (const m of metrics.registry.getMetricsAsArray() as Array<{ name: string; aggregator: string }>) {
    const how = PER_STORE[m.name];
    if (how) m.aggregator = how;
  }
  AggregatorRegistry.setRegistries(metrics.registry);
  // installs prom-client's answer to the primary's request for this worker's metrics
  new AggregatorRegistry();
  const pending = new Map<number, (text: string | null) => void>();
  let next = 0;
  process.on('message', (m: ToWorker) => {
    if (m?.airlock === 'metrics') pending.get(m.id)?.(m.text);
  });
  const own = metrics.registry.metrics.bind(metrics.registry);
  metrics.registry.metrics = () =>
    new Promise<string>((resolve) => {
      const id = next++;
      const timer = setTimeout(() => finish(null), 5000);
      const finish = (text: string | null): void => {
        clearTimeout(timer);
        pending.delete(id);
        if (text !== null) resolve(text);
        else void own().then(resolve);
      };
      pending.set(id, finish);
      process.send!({ airlock: 'metrics', id } satisfies ToPrimary);
    });
}
