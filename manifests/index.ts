/**
 * The trust core's facade: everything the rest of airlock may use from
 * `manifests/`. Pure: bytes and a clock in, verdicts out; no fs, no network.
 *
 * CONTRACT: other folders code against these names and signatures; each
 * lives in the file named beside it.
 */
export * from './types.js';
export * from './errors.js';

export type { TrustedRoot, RootClockOptions } from './root.js';
export type { VerifyReleaseOptions, VerifiedRelease } from './verify.js';

/** verify.ts: size cap → signatures+threshold over raw bytes → strict parse+schema → product → rollback → expiry; the rollback rule alone. */
export { verifyRelease, assertNoRollback } from './verify.js';

/**
 * gate.ts: THE way a release gets in, on both sides: local root → offered
 * rotations → fresh root → verifyRelease against the serial book. Entry points
 * use passTrustGate (all bytes at hand) or openTrustGate (a streamed chain).
 */
export { passTrustGate, openTrustGate, MAX_OFFERED_ROOTS } from './gate.js';
export type { GateClock, GateInput, GateResult, OfferedRoot, TrustGate } from './gate.js';

/**
 * root.ts: loadTrustedRoot — a root.json got out of band: size cap, self-signature by its root threshold, schema, expiry;
 * updateTrustedRoot — follow a chain of newer roots (N+1 signed by thresholds of N and N+1), returns the newest;
 * readSelfSignedRoot — the same checks as loadTrustedRoot but expiry (for `root rotate`).
 */
export { loadTrustedRoot, updateTrustedRoot, followRoot, readSelfSignedRoot, assertRootFresh } from './root.js';

/** dsse.ts: signEnvelope — sign canonical payload bytes into an envelope (JSON bytes); decodeEnvelope — decode WITHOUT verifying. */
export { signEnvelope, decodeEnvelope, pae } from './dsse.js';

/** canonical.ts: RFC 8785 form of a JSON value. */
export { canonicalize, canonicalBytes } from './canonical.js';

/** digest.ts */
export { sha256Hex } from './digest.js';

/** json.ts: strict JSON (duplicate keys, floats, big integers, invalid UTF-8 refused; canonical form for payloads). */
export { parseStrictJson, parseCanonicalJson } from './json.js';

/** paths.ts: EPATH unless a safe relative POSIX path. */
export { assertSafePath } from './paths.js';

/** schema.ts */
export { validateReleaseManifest, validateRootPayload } from './schema.js';

/** keys.ts: ed25519 key ids, PEM and raw forms. */
export { keyIdOf, rawPublicKey, publicKeyFromRaw, loadPrivateKeyPem, loadPublicKeyPem, generateKey } from './keys.js';
export type { GeneratedKey } from './keys.js';

/** blobs.ts: every blob a release needs (artifacts and image blobs), unique by digest, manifest order, with the paths needing each. */
export { releaseBlobs } from './blobs.js';

/** image-ref.ts: Docker's reading of an image reference. */
export { parseImageRef, REPOSITORY_NAME, TAG_NAME, type ImageRef } from './image-ref.js';
