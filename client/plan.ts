/**
 * What this node needs from a release: its artifacts (by role), the blobs
 * behind them, and the install steps in manifest order.
 */
import { sha256Hex } from '../manifests/index.js';
import type { Artifact, BlobRef, DebArtifact, ReleaseManifest } from '../manifests/types.js';

/** An artifact without roles is for every node; a node without roles takes every artifact. */
export function selectArtifacts(manifest: ReleaseManifest, roles: readonly string[]): Artifact[] {
  if (roles.length === 0) return [...manifest.artifacts];
  return manifest.artifacts.filter((a) => !a.roles || a.roles.length === 0 || a.roles.some((r) => roles.includes(r)));
}

/** Every blob the artifacts need (image config and layers too), unique by digest, in order. */
export function neededBlobs(artifacts: readonly Artifact[]): Array<BlobRef & { paths: string[] }> {
  const byDigest = new Map<string, BlobRef & { paths: string[] }>();
  const add = (b: BlobRef, path: string): void => {
    const seen = byDigest.get(b.sha256);
    if (seen) seen.paths.push(path);
    else byDigest.set(b.sha256, { sha256: b.sha256, size: b.size, paths: [path] });
  };
  for (const a of artifacts) {
    add(a, a.path);
    if (a.kind === 'oci-image') for (const b of a.blobs) add(b, a.path);
  }
  return [...byDigest.values()];
}

export type Step =
  | { index: number; kind: 'deb'; path: string; sha256: string; debs: DebArtifact[] }
  | { index: number; kind: Exclude<Artifact['kind'], 'deb'>; path: string; sha256: string; artifact: Exclude<Artifact, DebArtifact> };

/**
 * Manifest order, except that all debs go in one step at the place of the
 * first one (one dpkg call, so debs that depend on each other install together).
 * A step's identity in the journal is (index, path, sha256).
 */
export function installSteps(artifacts: readonly Artifact[]): Step[] {
  const steps: Step[] = [];
  const debs = artifacts.filter((a): a is DebArtifact => a.kind === 'deb');
  let debsPlaced = false;
  for (const a of artifacts) {
    if (a.kind === 'deb') {
      if (debsPlaced) continue;
      debsPlaced = true;
      const path = debs.length === 1 ? a.path : `debs: ${debs.map((d) => d.path).join(' ')}`;
      // one digest names the whole group: any change in any deb makes it a new step
      const sha256 = debs.length === 1 ? a.sha256 : sha256Hex(debs.map((d) => d.sha256).join('\n'));
      steps.push({ index: steps.length, kind: 'deb', path, sha256, debs });
    } else {
      steps.push({ index: steps.length, kind: a.kind, path: a.path, sha256: a.sha256, artifact: a });
    }
  }
  return steps;
}
