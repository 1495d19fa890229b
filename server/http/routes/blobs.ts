/** `/blobs/sha256/:hex` (any verified blob) and `/files/:release/*path` (an artifact by manifest path). */
import { CACHE_ROUTES } from '../../../common/cache-api.js';
import { AirlockError } from '../../../manifests/errors.js';
import { contentTypeOf } from '../content-type.js';
import { routeTo, type ServeEnv, type ServeRouter } from '../env.js';
import { checkHex, decodePath, decodeSegment } from '../path-params.js';
import { sendBlob } from '../send-blob.js';

export function blobRoutes(router: ServeRouter, env: ServeEnv): void {
  router.get(
    'blobs',
    CACHE_ROUTES.blob,
    routeTo(async (ctx, [hex]) => {
      await sendBlob(ctx, env, { sha256: checkHex(decodeSegment(hex!, 'blob digest'), 'blob digest') });
    }),
  );

  router.get(
    'files',
    CACHE_ROUTES.file,
    routeTo(async (ctx, [rawRelease, rawPath]) => {
      const release = decodeSegment(rawRelease!, 'release');
      const path = decodePath(rawPath!, 'file path');
      const files = (await env.catalog.get()).files.get(release);
      if (!files) throw new AirlockError('ENOTFOUND', `release ${release} is not staged on this cache`, { release });
      const a = files.get(path);
      if (!a) {
        env.metrics.miss('files');
        throw new AirlockError('ENOTFOUND', `release ${release} has no artifact at path ${path}`, { release, path });
      }
      await sendBlob(ctx, env, {
        sha256: a.sha256,
        size: a.size,
        contentType: contentTypeOf(a.kind === 'oci-image' ? { ...a, mediaType: env.mediaTypes.get(a.sha256) ?? a.mediaType } : a),
        what: `${path} of release ${release}`,
        // an image's path is its manifest: answered by us, as under /v2/ (its type matters to the client)
        redirect: a.kind !== 'oci-image',
      });
    }),
  );
}
