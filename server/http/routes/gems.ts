/**
 * `/gems/:release/…`: a RubyGems source of the release's gems (gem-index.ts).
 *
 * `gem install --source http://cache/gems/R/ NAME` first sends `HEAD /gems/R/`
 * (a 200 tells it the compact index is there), reads `info/NAME`, then
 * `quick/Marshal.4.8/NAME-V.gemspec.rz` and `gems/NAME-V.gem`; `gem fetch`
 * reads `specs.4.8.gz` and `prerelease_specs.4.8.gz`; bundler reads
 * `versions` then `info/NAME` (again with a Range and `If-None-Match` once it
 * holds a copy), then the .gem files.
 */
import type { Context } from 'koa';
import parseRange from 'range-parser';
import { CACHE_ROUTES, cachePath } from '../../../common/cache-api.js';
import { AirlockError } from '../../../manifests/errors.js';
import { routeTo, type ServeEnv, type ServeRouter } from '../env.js';
import { gemIndexCache, type GemIndexFile } from '../gem-index.js';
import { decodePath, decodeSegment } from '../path-params.js';
import { sendBlob } from '../send-blob.js';

/** An index file: ETag, revalidation, one byte range (bundler appends to its copy of `versions` and `info/*` that way). */
function sendIndexFile(ctx: Context, file: GemIndexFile): void {
  const { body, etag } = file;
  ctx.set('ETag', etag);
  // the index changes when a newer manifest for the release arrives: revalidate
  ctx.set('Cache-Control', 'no-cache');
  ctx.set('Accept-Ranges', 'bytes');
  if (ctx.get('If-None-Match').split(',').some((t) => t.trim().replace(/^W\//, '') === etag)) {
    ctx.status = 304;
    return;
  }
  const range = ctx.get('Range');
  const ifRange = ctx.get('If-Range');
  if (range && (!ifRange || ifRange.trim() === etag)) {
    const parsed = parseRange(body.length, range, { combine: true });
    if (parsed === -1) {
      ctx.status = 416;
      ctx.set('Content-Range', `bytes */${body.length}`);
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `range ${range.slice(0, 100)} is outside the ${body.length} bytes of ${ctx.path}\n`;
      return;
    }
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      const { start, end } = parsed[0]!;
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${start}-${end}/${body.length}`);
      ctx.type = file.type;
      ctx.body = body.subarray(start, end + 1);
      return;
    }
  }
  ctx.type = file.type;
  ctx.body = body;
}

export function gemRoutes(router: ServeRouter, env: ServeEnv): void {
  // one source per release manifest, built on first use and shared by concurrent requests
  const gemIndex = gemIndexCache(env.store);
  const handle = routeTo(async (ctx, [rawRelease, rawPath]) => {
    const release = decodeSegment(rawRelease!, 'release');
    const rel = (await env.catalog.get()).releases.get(release);
    if (!rel) throw new AirlockError('ENOTFOUND', `release ${release} is not staged on this cache`, { release });
    if (rawPath === undefined) {
      // gem's probe for the compact index is a HEAD on this: it must be 200
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `RubyGems source of release ${release}: gem install --source ${ctx.protocol}://${ctx.host}${cachePath.gemSource(release)} NAME\n`;
      return;
    }
    const path = decodePath(rawPath, 'gem source path');
    const index = await gemIndex(rel);
    const file = index.files.get(path);
    if (file) return sendIndexFile(ctx, file);
    const gem = index.gems.get(path);
    if (!gem) {
      env.metrics.miss('gems');
      throw new AirlockError('ENOTFOUND', `the gem source of release ${release} has no ${path}`, { release, path });
    }
    await sendBlob(ctx, env, { sha256: gem.sha256, size: gem.size, contentType: 'application/octet-stream', what: `${path} of release ${release}` });
  });
  router.get('gems', CACHE_ROUTES.gemsRoot, handle);
  router.get('gems', CACHE_ROUTES.gems, handle);
}
