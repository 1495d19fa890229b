/** Hand-made releases for storage tests: no keys, no signing (storage trusts what it is given). */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VerifiedRelease } from '../../manifests/index.js';
import type { Artifact } from '../../manifests/types.js';
import { sha256, unsignedRelease } from '../support/release.js';

export const sha = sha256;

export const tmp = (prefix = 'airlock-store-'): Promise<string> => mkdtemp(join(tmpdir(), prefix));

/** A file artifact for `body`, fetched from http://up.example/<path>. */
export function fileArtifact(path: string, body: string | Buffer): Artifact {
  return { path, kind: 'file', sha256: sha(body), size: Buffer.byteLength(body), urls: [`http://up.example/${path}`] };
}

export const makeRelease = (release: string, artifacts: Artifact[], serial = 1, product = 'stackato'): VerifiedRelease =>
  unsignedRelease({ release, artifacts, serial, product });
