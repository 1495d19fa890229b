/** `/blobs/sha256/:hex` (any verified blob) and `/files/:release/*path` (an artifact by manifest path). */
import { AirlockError } from '../../../manifests/errors.js';
import { contentTypeOf } from '../content-type.js';
import type { Route } from '../env.js';
import { checkHex, decodePath, decodeSegment } from '../path-params.js';
import { sendBlob } from '../send-blob.js';

export const blobRoutes: Route[] = [
  {
    name: 'blobs',
    methods: ['GET', 'HEAD'],
    pattern: /^\/blobs\/sha256\/([^/]*)$/,
    async handle(ctx, env, m) {
      const hex = checkHex(decodeSegment(m[1]!, 'blob digest'), 'blob digest');
      await sendBlob(ctx, env, { sha256: hex });
    },
  },
  {
    name: 'files',
    methods: ['GET', 'HEAD'],
    pattern: /^\/files\/([^/]+)\/(.+)$/,
    async handle(ctx, env, m) {
      const release = decodeSegment(m[1]!, 'release');
      const path = decodePath(m[2]!, 'file path');
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
      });
    },
  },
];
