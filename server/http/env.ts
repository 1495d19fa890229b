/** What every route handler gets: the store, the catalog, metrics, config and the clock. */
import type { Context } from 'koa';
import type { Logger } from 'pino';
import type { Store, StoredRelease } from '../../storage/index.js';
import type { AirlockConfig } from '../config.js';
import type { AptIndex } from './apt-index.js';
import type { CatalogSource } from './catalog.js';
import type { Metrics } from './metrics.js';
import type { SmallBlobCache } from './small-blobs.js';

/** Starts staging a release in-process; resolves when staging has been accepted (not finished). */
export type StageStarter = ((envelope: { url?: string; inline?: Buffer }) => Promise<Record<string, unknown>>) & {
  /** what GET /stage answers: the run in progress and the last outcome */
  status?: () => Record<string, unknown>;
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
  aptIndex: (rel: StoredRelease) => Promise<AptIndex>;
  stage: StageStarter | null;
  passthrough: Passthrough | null;
  smallBlobs: SmallBlobCache;
  /** media type per manifest digest, sniffed once when a manifest did not record it */
  mediaTypes: Map<string, string>;
}

export interface Route {
  name: string;
  methods: readonly string[];
  pattern: RegExp;
  handle(ctx: Context, env: ServeEnv, m: RegExpExecArray): Promise<void>;
}
