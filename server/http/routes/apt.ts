/**
 * `/apt/:release/…`: a flat apt repository of the release's debs. apt asks
 * for `./InRelease` (absent: we do not sign; the source says trusted=yes),
 * `./Release`, `./Packages.{xz,bz2,lzma}` (absent) and `./Packages.gz`, then
 * `./<Filename>` for each .deb.
 */
import type { Context } from 'koa';
import { createHash } from 'node:crypto';
import { CACHE_ROUTES, cachePath } from '../../../common/cache-api.js';
import { AirlockError } from '../../../manifests/errors.js';
import { routeTo, type ServeEnv, type ServeRouter } from '../env.js';
import { decodePath, decodeSegment } from '../path-params.js';
import { sendBlob } from '../send-blob.js';

function sendIndex(ctx: Context, body: Buffer, type: string): void {
  const etag = `"sha256:${createHash('sha256').update(body).digest('hex')}"`;
  ctx.set('ETag', etag);
  // the index changes when a newer manifest for the release arrives: revalidate
  ctx.set('Cache-Control', 'no-cache');
  ctx.type = type;
  if (ctx.get('If-None-Match').split(',').some((t) => t.trim() === etag)) {
    ctx.status = 304;
    return;
  }
  ctx.body = body;
}

export function aptRoutes(router: ServeRouter, env: ServeEnv): void {
  const handle = routeTo(async (ctx, [rawRelease, rawPath]) => {
    const release = decodeSegment(rawRelease!, 'release');
    const rel = (await env.catalog.get()).releases.get(release);
    if (!rel) throw new AirlockError('ENOTFOUND', `release ${release} is not staged on this cache`, { release });
    const path = rawPath === undefined || rawPath === './' ? '' : decodePath(rawPath, 'apt path', true);
    if (path === '') {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `flat apt repository of release ${release}: deb [trusted=yes] ${ctx.origin}${cachePath.aptRepository(release)} ./\n`;
      return;
    }
    const index = await env.aptIndex(rel);
    switch (path) {
      case 'Packages':
        return sendIndex(ctx, index.packages, 'text/plain; charset=utf-8');
      case 'Packages.gz':
        return sendIndex(ctx, index.packagesGz, 'application/gzip');
      case 'Release':
        return sendIndex(ctx, index.release, 'text/plain; charset=utf-8');
    }
    const deb = index.debs.get(path);
    if (!deb) {
      throw new AirlockError('ENOTFOUND', `apt repository of release ${release} has no ${path}`, { release, path });
    }
    await sendBlob(ctx, env, {
      sha256: deb.sha256,
      size: deb.size,
      contentType: 'application/vnd.debian.binary-package',
      what: `${path} of release ${release}`,
    });
  });
  // the repository's root (`/apt/R/`) and everything in it, one handler
  router.get('apt', CACHE_ROUTES.aptRoot, handle);
  router.get('apt', CACHE_ROUTES.apt, handle);
}
