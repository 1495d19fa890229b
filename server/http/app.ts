/**
 * The cache node's HTTP app, built by a factory so tests can drive
 * `callback()` without a socket. Dispatch is a short table of anchored
 * regexes over the raw (still encoded) path, so every parameter is decoded
 * and checked by path-params.ts and nothing is decoded twice.
 *
 * Middleware, outermost first: access log + metrics → error mapping →
 * proxy mode (absolute-form requests never reach the routes) → routes.
 * `callback()` puts the lean blob-by-digest path (fast-blobs.ts) in front.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Koa, { type Context } from 'koa';
import pino, { type Logger } from 'pino';
import type { AirlockConfig } from '../config.js';
import type { Store } from '../../storage/index.js';
import { aptIndexCache } from './apt-index.js';
import { catalogSource, type CatalogSource } from './catalog.js';
import type { Passthrough, Route, ServeEnv, StageStarter } from './env.js';
import { withFastBlobs } from './fast-blobs.js';
import { renderError } from './errors.js';
import { createMetrics, type Metrics } from './metrics.js';
import { aptRoutes } from './routes/apt.js';
import { blobRoutes } from './routes/blobs.js';
import { healthRoutes } from './routes/health.js';
import { ociRoutes } from './routes/oci.js';
import { gotPassthrough, isAbsoluteForm, proxyRequest } from './routes/proxy.js';
import { stageRoutes } from './routes/stage.js';
import { SmallBlobCache } from './small-blobs.js';
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

export const ROUTES: readonly Route[] = [...healthRoutes, ...blobRoutes, ...ociRoutes, ...aptRoutes, ...stageRoutes];

export type ServeConfig = Pick<AirlockConfig, 'adminToken' | 'passthrough'>;

export function createServer(config: ServeConfig, deps: ServerDeps): AirlockApp {
  const logger = deps.logger ?? pino({ level: 'silent' });
  const clock = deps.clock ?? (() => new Date());
  const metrics = createMetrics({ defaultMetrics: deps.defaultMetrics });
  const catalog = catalogSource(deps.store, deps.catalogTtlMs ?? 2000);
  const env: ServeEnv = {
    config,
    store: deps.store,
    catalog,
    metrics,
    logger,
    clock,
    aptIndex: aptIndexCache(deps.store, clock),
    stage: deps.stage ?? null,
    passthrough: config.passthrough ? (deps.passthrough ?? gotPassthrough()) : null,
    mediaTypes: new Map(),
    smallBlobs: new SmallBlobCache(deps.smallBlobCacheBytes),
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
    if (isAbsoluteForm(ctx.req.url ?? '')) return proxyRequest(ctx, env);
    return next();
  });

  app.use(async (ctx: Context) => {
    const path = ctx.path;
    let allowed: string[] | null = null;
    for (const r of ROUTES) {
      const m = r.pattern.exec(path);
      if (!m) continue;
      if (!r.methods.includes(ctx.method)) {
        allowed = [...(allowed ?? []), ...r.methods];
        continue;
      }
      (ctx.state as { route?: string }).route = r.name;
      return r.handle(ctx, env, m);
    }
    if (allowed) {
      ctx.status = 405;
      ctx.set('Allow', [...new Set(allowed)].join(', '));
      if (path.startsWith('/v2/')) {
        ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
        ctx.body = { errors: [{ code: 'UNSUPPORTED', message: 'this registry is read-only', detail: {} }] };
      } else ctx.body = { error: { code: 'EUSAGE', message: `${ctx.method} is not allowed on ${path}` } };
      return;
    }
    if (path.startsWith('/v2/')) {
      ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
      ctx.status = 404;
      ctx.body = { errors: [{ code: 'NAME_UNKNOWN', message: 'no such registry endpoint', detail: {} }] };
      return;
    }
    ctx.status = 404;
    ctx.body = { error: { code: 'ENOTFOUND', message: `no such endpoint: ${path.slice(0, 200)}` } };
  });

  return { app, env, metrics, catalog, callback: () => withFastBlobs(env, app.callback()) };
}
