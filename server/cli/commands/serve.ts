/**
 * `airlock serve`: the cache node's LAN server. Opens the store read-only,
 * listens, writes an access log as JSON lines (pino) to stdout, and on
 * SIGTERM/SIGINT stops accepting and lets downloads in flight finish (up to
 * --grace seconds) before exiting. On SIGHUP (and when `airlock relocate`
 * hands over) it serves from the config's new cache_dir, downloads in flight
 * finishing from the old files.
 */
import type { Command } from 'commander';
import pino from 'pino';
import { AirlockError } from '../../../manifests/errors.js';
import { assertCacheLayout } from '../../../storage/layout.js';
import { createServer, inProcessStager, listenApp } from '../../http/index.js';
import { defaultMaxConnections } from '../../http/listen.js';
import { inCluster, isWorker, onPrimaryStop, runPrimary, shareMetrics, workerCount } from '../../http/cluster.js';
import { followingStore } from '../../http/follow.js';
import { LogWriter } from '../../http/log-writer.js';
// not the storage facade: it also loads the got-based fetcher, which serving never uses
import { backendFromConfig } from '../../../storage/backend/select.js';
import { action, withCommon, UPSTREAM_FLAGS } from '../frame.js';
import { loadConfig, type CommonFlags } from '../../config.js';
import { recordsOptions } from '../../store-records.js';

interface ServeFlags extends CommonFlags {
  grace?: string;
  idleTimeout?: string;
  maxConnections?: string;
  workers?: string;
}

function seconds(text: string | undefined, flag: string, dflt: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n > 86_400) throw new AirlockError('EUSAGE', `${flag} must be a number of seconds (0–86400), got "${text}"`);
  return n;
}

function connectionCap(text: string | undefined, fromConfig: number | undefined): number {
  if (text === undefined) return fromConfig ?? defaultMaxConnections();
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw new AirlockError('EUSAGE', `--max-connections must be an integer from 1 to 1000000, got "${text}"`);
  }
  return n;
}

export function register(program: Command): void {
  withCommon(program.command('serve'), ['cache-dir', 'trust', ...UPSTREAM_FLAGS, 'accept-expired-until'])
    .description(
      'Serve the cache over the LAN: blobs by digest, files by release path, a read-only ' +
        'OCI registry (/v2/), flat apt repositories (/apt/RELEASE ./), and proxy mode for ' +
        'nodes whose http_proxy points here. Reads need no credentials; POST /stage (start ' +
        'staging an envelope in-process; needs --trust) requires "Authorization: Bearer <admin_token>".',
    )
    .option('--listen <host:port>', 'address to listen on (default 0.0.0.0:7070, or listen in the config)')
    .option('--grace <seconds>', 'on SIGTERM/SIGINT, how long in-flight downloads may take to finish', '30')
    .option('--idle-timeout <seconds>', 'drop a connection when no byte moved for this long', '60')
    .option(
      '--max-connections <n>',
      'connections open at once; more are closed at accept and counted in /metrics ' +
        '(default 1024, or fewer when the open-file limit cannot hold two descriptors each; or max_connections in the config)',
    )
    .option(
      '--workers <n>',
      'server processes sharing the socket, so every core serves (1 to 64, or auto: one per core; default 1); ' +
        '/metrics sums them all; --max-connections applies to each',
    )
    .addHelpText(
      'after',
      '\nConfig keys: listen, cache_dir, storage (fs or s3), admin_token, tls: {cert, key},\n' +
        'passthrough (forward non-staged proxy requests upstream instead of answering 403),\n' +
        'max_connections, accel_redirect (behind nginx: X-Accel-Redirect to the blob file),\n' +
        'redirect_blobs (storage s3 only: blob and file GETs answer 307 to a presigned URL in the\n' +
        'bucket; nodes need a route to its endpoint), redirect_ttl (its validity, default 15m),\n' +
        'apt_signing_key (default: made on first use in cache_dir), mirrors (for POST /stage).\n' +
        'Limits: a connection must send a complete request head within 20 s of opening (a later\n' +
        'request on a kept-alive connection: within 20 s of its first byte; an idle kept-alive\n' +
        'connection is closed after 30 s); no byte moving for 60 s (--idle-timeout) cuts it; a bad\n' +
        'request is answered and its socket destroyed within 1 s, whether or not the client reads.\n' +
        'Output: one JSON line per request on stdout (pino); the listening address first.\n' +
        'Signals: SIGTERM/SIGINT stop (downloads in flight get --grace); SIGHUP (systemctl reload, and\n' +
        '"airlock relocate" by itself) re-reads cache_dir and storage: and serves from the new folder\n' +
        'or bucket, no restart.\n' +
        'cache_dir must hold an airlock cache (its index/ folder, made by the first stage or import;\n' +
        'empty is fine): a folder without one, or none, is refused at start with exit 2.\n' +
        'Endpoints: /healthz /metrics /releases /releases/R/manifest /blobs/sha256/HEX\n' +
        '           /files/R/PATH /v2/… /apt/airlock.gpg /apt/PRODUCT/dists/SUITE/… /apt/R/\n' +
        '           /gems/R/ POST /stage (docs/http-api.md has them all)\n' +
        'Exit status: 0 after a clean shutdown, 1 failure, 2 usage (bad flag, address in use).',
    )
    .action(
      action<[], ServeFlags>(inCluster(async ({ config, out }, opts) => {
        const grace = seconds(opts.grace, '--grace', 30);
        const idle = seconds(opts.idleTimeout, '--idle-timeout', 60);
        const maxConnections = connectionCap(opts.maxConnections, config.maxConnections);
        // more libuv threads: each concurrent download keeps one busy per disk read
        process.env.UV_THREADPOOL_SIZE ??= '16';
        // lines written together, one write in flight (log-writer.ts says why not pino.destination)
        const log = new LogWriter(1);
        process.once('exit', () => log.flushSync());
        const logger = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, log);
        const workers = workerCount(opts.workers);
        // --workers: this process only starts and stops the workers, each of which runs what follows (server/http/cluster.ts)
        if (workers > 1 && !isWorker()) return runPrimary(workers, logger);
        // with blobs in a bucket, cache_dir is a cache of its release records: an empty one is filled at open
        if (config.storage?.backend !== 's3') await assertCacheLayout(config.cacheDir);
        // follows cache_dir on SIGHUP, which `airlock relocate` sends too (server/http/follow.ts)
        const follow = await followingStore({
          cacheDir: config.cacheDir,
          configuredCacheDir: () => loadConfig(opts).cacheDir,
          backend: await backendFromConfig(config),
          // and the storage: section on SIGHUP, which relocate sends after moving the blobs into a bucket or back
          storage: config.storage,
          configuredStorage: () => loadConfig(opts).storage,
          recordsFor: (storage) => recordsOptions({ storage, trust: config.trust }, (line, details) => logger.warn(details, line)),
          records: recordsOptions(config, (line, details) => logger.warn(details, line)),
          pollMs: config.storage?.backend === 's3' ? config.storage.s3.pollMs : undefined,
          logger,
          onSwitch: () => airlock.catalog.invalidate(),
        });
        const store = follow.store;
        const jobs = inProcessStager(Object.defineProperty({ ...config }, 'cacheDir', { get: follow.cacheDir, enumerable: true }), logger);
        const airlock = createServer(config, { store, logger, defaultMetrics: true, stage: jobs.starter });
        shareMetrics(airlock.metrics);
        const listening = await listenApp(airlock, { listen: config.listen, tls: config.tls, idleTimeoutMs: idle * 1000, maxConnections });
        logger.info({ address: listening.url, cacheDir: config.cacheDir, tls: Boolean(config.tls), maxConnections }, 'listening');
        out.note(`airlock serve: listening on ${listening.url} (cache ${config.cacheDir})`);

        await new Promise<void>((resolve) => {
          let stopping = false;
          const stop = (signal: string): void => {
            if (stopping) {
              logger.warn({ signal }, 'second signal: closing every connection now');
              listening.server.closeAllConnections();
              return;
            }
            stopping = true;
            logger.info({ signal, graceSeconds: grace }, 'shutting down: letting downloads in flight finish');
            jobs.abort(); // staging resumes from its partial files on the next run
            void listening.close(grace * 1000).then(resolve);
          };
          process.on('SIGTERM', () => stop('SIGTERM'));
          process.on('SIGINT', () => stop('SIGINT'));
          onPrimaryStop((cut) => (cut || !stopping ? stop('primary') : undefined));
        });
        await follow.close();
        logger.info({}, 'stopped');
        logger.flush();
      })),
    );
}
