/**
 * What every route module gets: the router to register on and the serving
 * environment (store, catalog, metrics, config, clock).
 */
import type { Router, RouterMiddleware } from '@koa/router';
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Store } from '../../storage/index.js';
import type { AirlockConfig } from '../config.js';
import type { AptRepos } from './apt-index.js';
import type { CatalogSource } from './catalog.js';
import type { Metrics, StagingCounts } from './metrics.js';
import type { SmallBlobCache } from './small-blobs.js';
import type { TrackState } from './track.js';

/** Starts staging a release in-process; resolves when staging has been accepted (not finished). */
export type StageStarter = ((envelope: { url?: string; inline?: Buffer }) => Promise<Record<string, unknown>>) & {
  /** what GET /stage answers: the run in progress and the last outcome */
  status?: () => Record<string, unknown>;
  /** what the runs have done since the server started (the airlock_stage_* counters) */
  counts?: () => StagingCounts;
};

/** Forwards an absolute-form proxy request upstream (pass-through mode). */
export type Passthrough = (ctx: Context, url: string) => Promise<void>;

export interface ServeEnv {
  config: Pick<AirlockConfig, 'adminToken' | 'passthrough'>;
  store: Store;
  catalog: CatalogSource;
  metrics: Metrics;
  logger: Logger;
  clock: () => Date;
  /** the signed apt indexes (apt-index.ts), built on first use */
  apt: AptRepos;
  stage: StageStarter | null;
  passthrough: Passthrough | null;
  smallBlobs: SmallBlobCache;
  /** accel_redirect: blob bodies go to the front end (send-blob.ts); null: airlock sends them */
  accelRedirect: string | null;
  /** redirect_blobs: blob GETs answer 307 to a presigned URL in the bucket (send-blob.ts); null: airlock sends them */
  redirectBlobs: { ttlSeconds: number } | null;
  /** media type per manifest digest, sniffed once when a manifest did not record it */
  mediaTypes: Map<string, string>;
}

/** Patterns come from common/cache-api.ts (CACHE_ROUTES) and match the raw, still encoded path. */
export type ServeRouter = Router;

/**
 * A route's work, given its pattern's captures still percent-encoded: each
 * is decoded once, by path-params.ts. Not `ctx.params`: the router decodes
 * those itself and lets malformed encoding through as it came.
 */
export type RouteHandler = (ctx: Context, raw: readonly string[]) => Promise<void>;

/** Router middleware running `handle` under the route's registered name (metrics, access log). */
export function routeTo(handle: RouteHandler): RouterMiddleware {
  return (ctx) => {
    (ctx.state as TrackState).route = ctx.routerName ?? 'other';
    return handle(ctx, ctx.captures ?? []);
  };
}
