/** Hand-made releases for storage tests: no keys, no signing (storage trusts what it is given). */
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VerifiedRelease } from '../../manifests/index.js';
import type { Artifact, ReleaseManifest } from '../../manifests/types.js';

export const sha = (b: string | Uint8Array): string => createHash('sha256').update(b).digest('hex');

export const tmp = (prefix = 'airlock-store-'): Promise<string> => mkdtemp(join(tmpdir(), prefix));

/** A file artifact for `body`, fetched from http://up.example/<path>. */
export function fileArtifact(path: string, body: string | Buffer): Artifact {
  return { path, kind: 'file', sha256: sha(body), size: Buffer.byteLength(body), urls: [`http://up.example/${path}`] };
}

export function makeRelease(release: string, artifacts: Artifact[], serial = 1, product = 'stackato'): VerifiedRelease {
  const manifest: ReleaseManifest = {
    type: 'airlock-release',
    spec: 1,
    product,
    release,
    serial,
    issued: '2026-01-01T00:00:00Z',
    expires: '2030-01-01T00:00:00Z',
    artifacts,
  };
  const payload = Buffer.from(JSON.stringify(manifest));
  const digest = sha(payload);
  const envelope = Buffer.from(
    JSON.stringify({ payloadType: 'application/vnd.airlock.release.v1+json', payload: payload.toString('base64'), signatures: [] }),
  );
  return {
    manifest,
    envelope,
    payload,
    digest,
    signers: [],
    expiredAccepted: false,
    accepted: { product, serial, digest },
    checks: [],
  };
}
