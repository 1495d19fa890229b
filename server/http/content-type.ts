/** Content types of served artifacts, by kind and file name; octet-stream when unsure. */
import type { Artifact } from '../../manifests/types.js';

const BY_EXT: Array<[RegExp, string]> = [
  [/\.deb$/, 'application/vnd.debian.binary-package'],
  [/\.(tgz|tar\.gz|gz)$/, 'application/gzip'],
  [/\.tar$/, 'application/x-tar'],
  [/\.(txz|tar\.xz|xz)$/, 'application/x-xz'],
  [/\.(tzst|tar\.zst|zst)$/, 'application/zstd'],
  [/\.json$/, 'application/json'],
  [/\.(txt|sh)$/, 'text/plain; charset=utf-8'],
];

export function contentTypeOf(a: Pick<Artifact, 'kind' | 'path'> & { mediaType?: string }): string {
  if (a.kind === 'deb') return 'application/vnd.debian.binary-package';
  if (a.kind === 'oci-image') return a.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
  for (const [re, type] of BY_EXT) if (re.test(a.path)) return type;
  return 'application/octet-stream';
}
