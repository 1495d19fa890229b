/**
 * The cache node's HTTP app, built by a factory so tests can drive
 * `callback()` without a socket. Each module under routes/ registers its
 * routes on one @koa/router; patterns match the raw (still encoded) path and
 * handlers decode each capture once through path-params.ts (env.ts `routeTo`).
 *
 * Middleware, outermost first: access log + metrics → error mapping →
 * proxy mode (absolute-form requests never reach the routes) → the router →
 * 404/405 for what no route took. `callback()` puts the lean blob-by-digest
 * path (fast-blobs.ts) in front.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Router, type RouterContext } from '@koa/router';
import Koa from 'koa';
import pino, { type Logger } from 'pino';
import { AirlockError } from '../../manifests/errors.js';
import type { AirlockConfig } from '../config.js';
import type { Store } from '../../storage/index.js';
// from its own module, as serve.ts takes openStore: the facade would load the got-based fetcher
import { aptSigningKeyPath } from '../../storage/store.js';
import { aptRepos } from './apt-index.js';
import { aptSignerSource } from './apt-signer.js';
import { catalogSource, type CatalogSource } from './catalog.js';
import type { Passthrough, ServeEnv, StageStarter } from './env.js';
import { withFastBlobs } from './fast-blobs.js';
import { renderError, renderNoRoute } from './errors.js';
import { createMetrics, type Metrics } from './metrics.js';
import { aptRoutes } from './routes/apt.js';
import { blobRoutes } from './routes/blobs.js';
import { gemRoutes } from './routes/gems.js';
import { healthRoutes } from './routes/health.js';
import { ociRoutes } from './routes/oci.js';
import { gotPassthrough, isAbsoluteForm, proxyRequest } from './routes/proxy.js';
import { stageRoutes } from './routes/stage.js';
import { SmallBlobCache } from './small-blobs.js';
import { storeFigures } from './store-figures.js';
import { track, type TrackState } from './track.js';

export interface ServerDeps {
  /** an opened (read-only is enough) store */
  store: Store;
  /** access log and diagnostics; silent when absent */
  logger?: Logger;
  clock?: () => Date;
  /** in-process staging for POST /stage; absent → 501 */
  stage?: StageStarter;
  /** replaces the got-based pass-through (tests) */
  passthrough?: Passthrough;
  /** how long the catalog of staged releases is trusted before re-reading the store (default 2 s) */
  catalogTtlMs?: number;
  /** memory for blobs ≤ 64 KiB served often (default 32 MiB; 0 turns it off) */
  smallBlobCacheBytes?: number;
  /** how old the store's figures in /metrics may get before a scrape refreshes them (default 30 s) */
  storeFiguresMaxAgeMs?: number;
  /** process-level metrics (CPU, RSS, GC) in /metrics; off for tests */
  defaultMetrics?: boolean;
}

export interface AirlockApp {
  app: Koa;
  env: ServeEnv;
  metrics: Metrics;
  catalog: CatalogSource;
  /** the request listener: the lean blob path, then koa */
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}

export type ServeConfig = Pick<AirlockConfig, 'adminToken' | 'passthrough'> & Partial<Pick<AirlockConfig, 'aptSigningKey' | 'accelRedirect' | 'redirectBlobs'>>;

/** redirect_blobs needs a backend that presigns URLs (S3); the config refuses it on the filesystem already, this catches a store built by hand */
function redirectBlobs(on: { ttlSeconds: number } | null, store: Store): { ttlSeconds: number } | null {
  if (on && !store.backend.presign) {
    throw new AirlockError('EUSAGE', 'redirect_blobs needs blobs in S3 (storage.backend: s3): this store has no URL to send a client to', { key: 'redirect_blobs' });
  }
  return on;
}

export function createServer(config: ServeConfig, deps: ServerDeps): AirlockApp {
  const logger = deps.logger ?? pino({ level: 'silent' });
  const clock = deps.clock ?? (() => new Date());
  const metrics = createMetrics({ defaultMetrics: deps.defaultMetrics });
  const catalog = catalogSource(deps.store, deps.catalogTtlMs ?? 2000);
  metrics.watchStore(storeFigures(deps.store, catalog, { maxAgeMs: deps.storeFiguresMaxAgeMs }));
  metrics.watchStaging(() => deps.stage?.counts?.());
  const env: ServeEnv = {
    config,
    store: deps.store,
    catalog,
    metrics,
    logger,
    clock,
    // apt_signing_key, or the cache's own key made on first use
    apt: aptRepos(deps.store, aptSignerSource(config.aptSigningKey ?? aptSigningKeyPath(deps.store.cacheDir), !config.aptSigningKey)),
    stage: deps.stage ?? null,
    passthrough: config.passthrough ? (deps.passthrough ?? gotPassthrough()) : null,
    mediaTypes: new Map(),
    smallBlobs: new SmallBlobCache(deps.smallBlobCacheBytes),
    accelRedirect: config.accelRedirect ?? null,
    redirectBlobs: redirectBlobs(config.redirectBlobs ?? null, deps.store),
  };

  const app = new Koa();
  app.proxy = false;
  // stream errors after headers were sent (client went away mid-body) are routine, not failures
  app.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
    logger.warn({ err: err.message, code: err.code }, 'response stream failed');
  });

  app.use(async (ctx, next) => {
    track(ctx.req, ctx.res, ctx.state as TrackState, metrics, logger);
    await next();
  });

  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (e) {
      renderError(ctx, e, logger);
    }
  });

  app.use(async (ctx, next) => {
    if (isAbsoluteForm(ctx.req.url ?? '')) return proxyRequest(ctx, env, next);
    return next();
  });

  // sensitive and strict: `/HEALTHZ` and `/healthz/` are not `/healthz`
  const router = new Router({ sensitive: true, strict: true });
  for (const register of [healthRoutes, blobRoutes, ociRoutes, aptRoutes, gemRoutes, stageRoutes]) register(router, env);
  app.use(router.routes());
  app.use(async (ctx) => {
    // the router got here with the routes whose path matched (none of them for this method)
    const matched = (ctx as RouterContext).matched ?? [];
    renderNoRoute(ctx, [...new Set(matched.flatMap((layer) => layer.methods))].sort());
  });

  return { app, env, metrics, catalog, callback: () => withFastBlobs(env, app.callback()) };
}
