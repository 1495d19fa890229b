/**
 * The one place tests build digests, trust roots and releases from: sha256
 * of bytes, canonical JSON, root payloads signed by the given root keys, and
 * release manifests signed by the given release keys (or left unsigned for
 * storage, which trusts what it is given). The suites' fixture files
 * re-export these under the names their tests already use.
 */
import { createHash } from 'node:crypto';
import {
  canonicalize,
  rawPublicKey,
  RELEASE_PAYLOAD_TYPE,
  ROOT_PAYLOAD_TYPE,
  signEnvelope,
  type Artifact,
  type GeneratedKey,
  type ReleaseManifest,
  type RootPayload,
  type VerifiedRelease,
} from '../../manifests/index.js';

export const sha256 = (b: string | Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** RFC 8785 bytes of a value, as manifests and roots are signed. */
export const canon = (v: unknown): Buffer => Buffer.from(canonicalize(v), 'utf8');

export interface RootSpec {
  version?: number;
  expires?: string;
  /** keys that sign roots */
  root: GeneratedKey[];
  rootThreshold?: number;
  /** keys that sign releases */
  release: GeneratedKey[];
  releaseThreshold?: number;
}

/** A root payload listing every key once, thresholds 1 unless given. */
export function rootPayload(spec: RootSpec): RootPayload {
  const keys: RootPayload['keys'] = {};
  for (const k of [...spec.root, ...spec.release]) keys[k.keyid] = { keytype: 'ed25519', public: rawPublicKey(k.publicKey).toString('base64') };
  return {
    type: 'airlock-root',
    spec: 1,
    version: spec.version ?? 1,
    expires: spec.expires ?? '2028-01-01T00:00:00Z',
    keys,
    roles: {
      root: { keyids: spec.root.map((k) => k.keyid), threshold: spec.rootThreshold ?? 1 },
      release: { keyids: spec.release.map((k) => k.keyid), threshold: spec.releaseThreshold ?? 1 },
    },
  };
}

/** A root envelope over the canonical payload (which need not be a valid root: hostile tests pass anything). */
export const signRoot = (payload: unknown, signers: GeneratedKey[]): Buffer =>
  signEnvelope(ROOT_PAYLOAD_TYPE, canon(payload), signers.map((k) => k.privateKey));

export interface ReleaseSpec {
  release: string;
  serial: number;
  artifacts: Artifact[];
  product?: string;
  issued?: string;
  expires?: string;
}

/** A release manifest; product `stackato`, issued 2026-01-01, expiring 2030-01-01 unless given. */
export const releaseManifest = (spec: ReleaseSpec): ReleaseManifest => ({
  type: 'airlock-release',
  spec: 1,
  product: spec.product ?? 'stackato',
  release: spec.release,
  serial: spec.serial,
  issued: spec.issued ?? '2026-01-01T00:00:00Z',
  expires: spec.expires ?? '2030-01-01T00:00:00Z',
  artifacts: spec.artifacts,
});

/** A release envelope over the canonical manifest (any value: schema tests pass broken ones). */
export const signManifest = (manifest: unknown, signers: GeneratedKey[]): Buffer =>
  signEnvelope(RELEASE_PAYLOAD_TYPE, canon(manifest), signers.map((k) => k.privateKey));

/**
 * A release as the gate would hand it over, without keys: for stores, which
 * trust what they are given. The envelope carries no signature.
 */
export function unsignedRelease(spec: ReleaseSpec): VerifiedRelease {
  const manifest = releaseManifest(spec);
  const payload = Buffer.from(JSON.stringify(manifest));
  const digest = sha256(payload);
  const envelope = Buffer.from(JSON.stringify({ payloadType: RELEASE_PAYLOAD_TYPE, payload: payload.toString('base64'), signatures: [] }));
  return {
    manifest,
    envelope,
    payload,
    digest,
    signers: [],
    expiredAccepted: false,
    accepted: { product: manifest.product, serial: manifest.serial, digest },
    checks: [],
  };
}
