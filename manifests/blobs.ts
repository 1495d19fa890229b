/**
 * Every blob a release needs — each artifact, and each image's config and
 * layers — unique by digest, in manifest order (so staging and install agree
 * on order), with the artifact paths that need each blob.
 */
import type { BlobRef } from './types.js';

/** What releaseBlobs needs of an artifact: an image also lists its blobs. */
export interface ArtifactOutline extends BlobRef {
  path: string;
  blobs?: readonly BlobRef[];
}

export function releaseBlobs(manifest: { readonly artifacts: readonly ArtifactOutline[] }): Array<BlobRef & { paths: string[] }> {
  const byDigest = new Map<string, BlobRef & { paths: string[] }>();
  const add = (ref: BlobRef, path: string): void => {
    const known = byDigest.get(ref.sha256);
    if (!known) byDigest.set(ref.sha256, { sha256: ref.sha256, size: ref.size, paths: [path] });
    else if (!known.paths.includes(path)) known.paths.push(path);
  };
  for (const a of manifest.artifacts) {
    add(a, a.path);
    if (a.blobs) for (const b of a.blobs) add(b, a.path);
  }
  return [...byDigest.values()];
}
