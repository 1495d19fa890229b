/**
 * The trust root (docs/manifest.md "The trust root"): root.json is
 * a DSSE envelope whose payload lists the keys and the `root` and `release`
 * roles, signed by its own root role. Rotation as in TUF: root N+1 must be
 * exactly version N+1 and signed by the root thresholds of both N and N+1.
 */
import { AirlockError } from './errors.js';
import { parseEnvelope, type DecodedEnvelope } from './dsse.js';
import { parseCanonicalJson } from './json.js';
import { validateRootPayload } from './schema.js';
import { verifyThreshold } from './threshold.js';
import { LIMITS, ROOT_PAYLOAD_TYPE, type RootPayload } from './types.js';

/** A root that has been verified (self-signed by its root role threshold, not expired). */
export interface TrustedRoot {
  payload: RootPayload;
  /** the root.json bytes as verified */
  bytes: Buffer;
  version: number;
  expires: Date;
}

export interface RootClockOptions {
  /** --accept-expired-until: an expired root is accepted until this date (the caller logs it) */
  acceptExpiredUntil?: Date | null;
}

interface ReadRoot {
  decoded: DecodedEnvelope;
  payload: RootPayload;
}

/** Size cap, strict envelope, payload type, canonical payload, schema. Verifies no signature. */
function readRoot(bytes: Uint8Array, what: string): ReadRoot {
  const decoded = parseEnvelope(bytes, what, LIMITS.rootBytes);
  if (decoded.envelope.payloadType !== ROOT_PAYLOAD_TYPE) {
    throw new AirlockError('EMANIFEST', `${what}: payloadType is "${decoded.envelope.payloadType}", expected "${ROOT_PAYLOAD_TYPE}"`);
  }
  const payload = validateRootPayload(parseCanonicalJson(decoded.payload, `${what} payload`));
  return { decoded, payload };
}

function trusted(bytes: Uint8Array, payload: RootPayload): TrustedRoot {
  return { payload, bytes: Buffer.from(bytes), version: payload.version, expires: new Date(payload.expires) };
}

/** EEXPIRED unless the root is valid at `now` (or explicitly extended past it). */
export function assertRootFresh(root: TrustedRoot, now: Date, opts: RootClockOptions = {}): void {
  if (now.getTime() <= root.expires.getTime()) return;
  const until = opts.acceptExpiredUntil;
  if (until && until.getTime() >= now.getTime()) return;
  throw new AirlockError(
    'EEXPIRED',
    `trust root version ${root.version} expired at ${root.payload.expires}` +
      (until ? ` (--accept-expired-until ${until.toISOString()} is already past)` : ''),
    { version: root.version, expires: root.payload.expires },
  );
}

/**
 * A root.json checked for everything but its expiry: for `root rotate`,
 * which must be able to replace an expired root.
 */
export function readSelfSignedRoot(bytes: Uint8Array, what = 'root.json'): TrustedRoot {
  // A first root can only vouch for itself, so its payload is read before its
  // signatures; it is size-capped and parsed strictly, and trusted only after.
  const { decoded, payload } = readRoot(bytes, what);
  verifyThreshold(decoded, payload.roles.root, payload.keys, `${what} (version ${payload.version}) by its own root role`);
  return trusted(bytes, payload);
}

/** A root.json got out of band: size cap, self-signature by its root threshold, schema, expiry. */
export function loadTrustedRoot(bytes: Uint8Array, now: Date, opts: RootClockOptions = {}): TrustedRoot {
  const root = readSelfSignedRoot(bytes);
  assertRootFresh(root, now, opts);
  return root;
}

/**
 * One step along a chain of roots. A version below the trusted one is
 * skipped (chains carry their history); the trusted version with other bytes
 * is a fork and refused; the next one must be exactly version N+1 and signed
 * by the root thresholds of both N and N+1. Expiry is not checked here: only
 * the final root must be fresh, as in TUF.
 */
export function followRoot(current: TrustedRoot, bytes: Uint8Array, what: string): TrustedRoot {
  const { decoded, payload } = readRoot(bytes, what);
  if (payload.version < current.version) return current;
  if (payload.version === current.version) {
    if (current.bytes.equals(Buffer.from(bytes))) return current;
    throw new AirlockError(
      'ESIGNATURE',
      `${what}: root version ${payload.version} differs from the trusted root of the same version; refusing both`,
      { version: payload.version },
    );
  }
  if (payload.version !== current.version + 1) {
    throw new AirlockError(
      'ESIGNATURE',
      `${what}: root version ${payload.version} cannot follow trusted version ${current.version} (expected exactly ${current.version + 1})`,
      { expected: current.version + 1, found: payload.version },
    );
  }
  verifyThreshold(decoded, current.payload.roles.root, current.payload.keys, `${what} (version ${payload.version}) by the root role of trusted version ${current.version}`);
  verifyThreshold(decoded, payload.roles.root, payload.keys, `${what} (version ${payload.version}) by its own root role`);
  return trusted(bytes, payload);
}

/** Follows a chain of newer roots (followRoot for each) and returns the newest, which must be fresh. */
export function updateTrustedRoot(
  current: TrustedRoot,
  chain: Uint8Array[],
  now: Date,
  opts: RootClockOptions = {},
): TrustedRoot {
  let root = current;
  chain.forEach((bytes, i) => {
    root = followRoot(root, bytes, `root chain[${i}]`);
  });
  assertRootFresh(root, now, opts);
  return root;
}
