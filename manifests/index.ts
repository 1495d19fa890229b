/**
 * The trust core's facade: everything the rest of airlock may use from
 * `manifests/`. Pure: bytes and a clock in, verdicts out; no fs, no network.
 *
 * CONTRACT (other folders code against these signatures; the bodies live in
 * the files named beside each and replace the stubs below).
 */
import type { KeyObject } from 'node:crypto';
import type { AcceptedSerial, BlobRef, Envelope, ReleaseManifest, RootPayload } from './types.js';
import { AirlockError } from './errors.js';

export * from './types.js';
export * from './errors.js';

/** A root that has been verified (self-signed by its root role threshold, not expired). */
export interface TrustedRoot {
  payload: RootPayload;
  /** the root.json bytes as verified */
  bytes: Buffer;
  version: number;
  expires: Date;
}

export interface VerifyReleaseOptions {
  root: TrustedRoot;
  /** the single clock reading taken at the start of the command */
  now: Date;
  /** --accept-expired-until: an expired manifest is accepted until this date (the caller logs it) */
  acceptExpiredUntil?: Date | null;
  /** highest serial accepted so far, per product */
  accepted?: Readonly<Record<string, AcceptedSerial>>;
  /** when set, the manifest must be for this product */
  product?: string;
}

export interface VerifiedRelease {
  manifest: ReleaseManifest;
  /** the envelope bytes as given */
  envelope: Buffer;
  /** the canonical payload bytes */
  payload: Buffer;
  /** sha256 hex of `payload`: the manifest's one digest */
  digest: string;
  /** distinct release key ids whose signatures verified */
  signers: string[];
  /** true when only --accept-expired-until let it through */
  expiredAccepted: boolean;
  /** what the caller must persist (atomically) as the new accepted serial */
  accepted: AcceptedSerial;
  /** one line per check passed, in order, for `manifest verify` */
  checks: string[];
}

const stub = (name: string): never => {
  throw new AirlockError('EINTERNAL', `${name} is not implemented yet`);
};

/** verify.ts: size cap → signatures+threshold over raw bytes → strict parse+schema → product → rollback → expiry. */
export function verifyRelease(envelope: Uint8Array, opts: VerifyReleaseOptions): VerifiedRelease {
  return stub('verifyRelease');
}

/** root.ts: a root.json got out of band: size cap, self-signature by its root threshold, schema, expiry. */
export function loadTrustedRoot(bytes: Uint8Array, now: Date): TrustedRoot {
  return stub('loadTrustedRoot');
}

/** root.ts: follow a chain of newer roots (N+1 signed by thresholds of N and N+1), returns the newest. */
export function updateTrustedRoot(trusted: TrustedRoot, chain: Uint8Array[], now: Date): TrustedRoot {
  return stub('updateTrustedRoot');
}

/** dsse.ts: sign canonical payload bytes into an envelope (JSON bytes). */
export function signEnvelope(payloadType: string, payload: Uint8Array, keys: KeyObject[]): Buffer {
  return stub('signEnvelope');
}

/** dsse.ts: decode an envelope WITHOUT verifying (for display and index rebuild of already-verified bytes). */
export function decodeEnvelope(bytes: Uint8Array): { envelope: Envelope; payload: Buffer } {
  return stub('decodeEnvelope');
}

/** canonical.ts: RFC 8785 form of a JSON value. */
export function canonicalize(value: unknown): string {
  return stub('canonicalize');
}

/** digest.ts */
export function sha256Hex(bytes: Uint8Array | string): string {
  return stub('sha256Hex');
}

/** paths.ts: EPATH unless a safe relative POSIX path. */
export function assertSafePath(path: string, where?: string): void {
  return stub('assertSafePath');
}

/** blobs.ts: every blob a release needs (artifacts and image blobs), unique by digest, manifest order, with the paths needing each. */
export function releaseBlobs(manifest: ReleaseManifest): Array<BlobRef & { paths: string[] }> {
  return stub('releaseBlobs');
}
