/**
 * releasePayload(): a release manifest payload (manifests/types.ts) listing
 * the world's artifacts with their proxy-only URLs, image included — what a
 * publisher would sign for this world.
 */
import type { Artifact, ReleaseManifest } from '../../manifests/types.js';
import type { World, WorldArtifact } from './types.js';

export interface ReleaseOptions {
  product: string;
  release: string;
  serial: number;
  /** default: now (whole seconds) */
  issued?: Date | string;
  /** default: issued + 30 days */
  expires?: Date | string;
  /** which artifacts: manifest paths to keep (in world order), or a filter; default all, image included */
  select?: readonly string[] | ((a: Artifact) => boolean);
}

/** RFC 3339 UTC without fractions, as the manifest writes dates. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The manifest fields only: drop the world's bookkeeping (localPath, directUrl, extra). */
function toManifestArtifact(a: WorldArtifact): Artifact {
  const { localPath: _l, directUrl: _d, extra: _x, ...rest } = a;
  return rest;
}

export function worldArtifacts(world: Pick<World, 'artifacts' | 'image'>): Artifact[] {
  const list = world.artifacts.map(toManifestArtifact);
  if (world.image) list.push({ ...world.image.artifact, blobs: world.image.artifact.blobs.map((b) => ({ ...b })) });
  return list;
}

export function releasePayload(world: Pick<World, 'artifacts' | 'image'>, opts: ReleaseOptions): ReleaseManifest {
  const issued = opts.issued === undefined ? new Date(Math.floor(Date.now() / 1000) * 1000) : new Date(opts.issued);
  const expires = opts.expires === undefined ? new Date(issued.getTime() + 30 * 86_400_000) : new Date(opts.expires);
  let artifacts = worldArtifacts(world);
  const select = opts.select;
  if (typeof select === 'function') artifacts = artifacts.filter(select);
  else if (select) {
    const missing = select.filter((p) => !artifacts.some((a) => a.path === p));
    if (missing.length) throw new Error(`releasePayload: the world has no artifact ${missing.join(', ')}`);
    artifacts = artifacts.filter((a) => select.includes(a.path));
  }
  return {
    type: 'airlock-release', spec: 1, product: opts.product, release: opts.release, serial: opts.serial,
    issued: rfc3339(issued), expires: rfc3339(expires), artifacts,
  };
}
