/**
 * Signed releases and stores for the bundle, gc and relocate suites: real
 * keys, a real trust root, real envelopes (manifests/), a real store.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  generateKey,
  loadTrustedRoot,
  openTrustGate,
  verifyRelease,
  type Artifact,
  type GateClock,
  type GeneratedKey,
  type RootPayload,
  type TrustedRoot,
  type TrustGate,
} from '../../../manifests/index.js';
import { openStore, type Store } from '../../../storage/index.js';
import { canon, releaseManifest, rootPayload as rootOf, sha256, signManifest, signRoot, type ReleaseSpec } from '../../support/release.js';

export const sha = sha256;
export const tmp = (prefix = 'airlock-airgap-'): Promise<string> => mkdtemp(join(tmpdir(), prefix));
export { canon, signRoot, type ReleaseSpec };

export const rootKey = generateKey();
export const releaseKey = generateKey();
export const strangerKey = generateKey();
export const newRootKey = generateKey();

/** Root `version` expiring 2035: `root` keys sign roots, `release` keys sign releases. */
export const rootPayload = (version: number, root: GeneratedKey[], release: GeneratedKey[]): RootPayload =>
  rootOf({ version, root, release, expires: '2035-01-01T00:00:00Z' });

/** root v1: rootKey signs roots, releaseKey signs releases */
export const root1Bytes = signRoot(rootPayload(1, [rootKey], [releaseKey]), [rootKey]);
export const trusted = (): TrustedRoot => loadTrustedRoot(root1Bytes, new Date());
/** the trust gate import takes, opened on root v1 (the local root) */
export const gate = (clock: GateClock = { now: new Date() }): TrustGate => openTrustGate(root1Bytes, clock);

export interface Blob {
  bytes: Buffer;
  sha256: string;
  size: number;
}
export const blob = (bytes: Buffer | string): Blob => {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  return { bytes: b, sha256: sha(b), size: b.length };
};
export const randomBlob = (size: number): Blob => blob(randomBytes(size));

/** Artifacts: two files, and an image whose config and layers are blobs (layers may be shared). */
export function fileArt(path: string, b: Blob): Artifact {
  return { path, kind: 'file', sha256: b.sha256, size: b.size, urls: [`http://up.invalid/${path}`] };
}
export function imageArt(path: string, manifestBlob: Blob, blobs: Blob[]): Artifact {
  return {
    path,
    kind: 'oci-image',
    sha256: manifestBlob.sha256,
    size: manifestBlob.size,
    image: `registry.invalid/${path}:1`,
    blobs: blobs.map((b) => ({ sha256: b.sha256, size: b.size })),
  };
}

/** A release signed by `key` (releaseKey), expiring 2034 unless the spec says otherwise. */
export const signRelease = (spec: ReleaseSpec, key: GeneratedKey = releaseKey): Buffer =>
  signManifest(releaseManifest({ ...spec, expires: spec.expires ?? '2034-01-01T00:00:00Z' }), [key]);

/** A store holding `envelope` and every blob in `blobs` (verified on the way in). */
export async function fill(store: Store, envelope: Buffer, blobs: Blob[]): Promise<void> {
  for (const b of blobs) await store.ingestStream({ sha256: b.sha256, size: b.size }, Readable.from([b.bytes]));
  const verified = verifyRelease(envelope, { root: trusted(), now: new Date(), accepted: await store.acceptedSerials() });
  await store.putRelease(verified);
}

export async function openFilled(dir: string, envelope: Buffer, blobs: Blob[]): Promise<Store> {
  const store = await openStore({ cacheDir: dir, write: true });
  await fill(store, envelope, blobs);
  return store;
}

/** What a store holds, for "unchanged" and "all verified" checks. */
export async function snapshot(store: Store): Promise<{ releases: string[]; blobs: string[]; partial: string[]; corrupt: string[] }> {
  const releases = (await store.listReleases()).map((r) => r.release).sort();
  const blobs: string[] = [];
  const corrupt: string[] = [];
  for await (const d of store.backend.list()) {
    blobs.push(d);
    const chunks: Buffer[] = [];
    for await (const c of await store.read(d)) chunks.push(c as Buffer);
    if (sha(Buffer.concat(chunks)) !== d) corrupt.push(d);
  }
  const partial = await readdir(join(store.cacheDir, 'partial')).catch(() => [] as string[]);
  return { releases, blobs: blobs.sort(), partial, corrupt };
}

export const readBytes = (p: string): Promise<Buffer> => readFile(p);

/** A small release: two files and one image with a config and two layers. */
export function sampleRelease(release = '3.6.2', serial = 17, sizes = { file: 40_000, layer: 300_000 }) {
  const f1 = randomBlob(sizes.file);
  const f2 = randomBlob(sizes.file / 2);
  const config = blob(`{"config":"${release}"}`);
  const l1 = randomBlob(sizes.layer);
  const l2 = randomBlob(sizes.layer / 3);
  const im = blob(JSON.stringify({ schemaVersion: 2, config: config.sha256, layers: [l1.sha256, l2.sha256] }));
  const artifacts = [fileArt('components/router.tgz', f1), fileArt('debs/hello.deb', f2), imageArt('images/router', im, [config, l1, l2])];
  const blobs = [f1, f2, im, config, l1, l2];
  return { release, serial, artifacts, blobs, envelope: signRelease({ release, serial, artifacts }) };
}
