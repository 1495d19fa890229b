/** `/healthz`, `/metrics`, `/releases`, `/releases/:release/manifest`. */
import { CACHE_ROUTES, type HealthAnswer, type ReleasesAnswer } from '../../../common/cache-api.js';
import { AirlockError } from '../../../manifests/errors.js';
import { routeTo, type ServeEnv, type ServeRouter } from '../env.js';
import { decodeSegment } from '../path-params.js';

export function healthRoutes(router: ServeRouter, env: ServeEnv): void {
  router.get(
    'healthz',
    CACHE_ROUTES.healthz,
    routeTo(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      try {
        const cat = await env.catalog.get();
        ctx.body = { ok: true, releases: cat.releases.size } satisfies HealthAnswer;
      } catch (e) {
        // a health check answers, it does not fail: 503 tells the balancer to look elsewhere
        env.logger.warn({ err: (e as Error).message }, 'health check: store unusable');
        ctx.status = 503;
        ctx.body = { ok: false, error: (e as Error).message } satisfies HealthAnswer;
      }
    }),
  );

  router.get(
    'metrics',
    CACHE_ROUTES.metrics,
    routeTo(async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.type = env.metrics.registry.contentType;
      ctx.body = await env.metrics.registry.metrics();
    }),
  );

  router.get(
    'releases',
    CACHE_ROUTES.releases,
    routeTo(async (ctx) => {
      const cat = await env.catalog.get();
      const out: ReleasesAnswer = [];
      for (const rel of cat.releases.values()) {
        const st = await env.store.status(rel.release);
        out.push({
          release: rel.release,
          product: rel.product,
          serial: rel.serial,
          digest: rel.digest,
          ready: st.ready,
          files: st.files,
          bytes: st.bytes,
        });
      }
      ctx.set('Cache-Control', 'no-cache');
      ctx.body = out;
    }),
  );

  router.get(
    'manifest',
    CACHE_ROUTES.manifest,
    routeTo(async (ctx, [raw]) => {
      const release = decodeSegment(raw!, 'release');
      const rel = (await env.catalog.get()).releases.get(release);
      if (!rel) throw new AirlockError('ENOTFOUND', `release ${release} is not staged on this cache`, { release });
      ctx.set('Cache-Control', 'no-cache');
      ctx.type = 'application/json';
      ctx.body = rel.envelope;
    }),
  );
}
