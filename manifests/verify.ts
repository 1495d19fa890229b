/**
 * Verifies a signed release manifest against a trusted root, in the order of docs/manifest.md
 * order: size cap → signatures and threshold over the raw bytes → strict
 * parse and schema → product → rollback → expiry. Nothing is parsed before
 * it is verified, and the caller persists `accepted` only after this returns.
 */
import { AirlockError } from './errors.js';
import { sha256Hex } from './digest.js';
import { parseEnvelope } from './dsse.js';
import { parseCanonicalJson } from './json.js';
import type { TrustedRoot } from './root.js';
import { validateReleaseManifest } from './schema.js';
import { verifyThreshold } from './threshold.js';
import { LIMITS, RELEASE_PAYLOAD_TYPE, type AcceptedSerial, type ReleaseManifest } from './types.js';

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

export function verifyRelease(envelope: Uint8Array, opts: VerifyReleaseOptions): VerifiedRelease {
  const checks: string[] = [];
  try {
    return verifyInOrder(envelope, opts, checks);
  } catch (e) {
    // Keep the checks that passed: `manifest verify` shows them beside the failure.
    if (e instanceof AirlockError) throw new AirlockError(e.code, e.message, { ...e.details, checksPassed: checks }, { cause: e });
    throw e;
  }
}

function verifyInOrder(envelope: Uint8Array, opts: VerifyReleaseOptions, checks: string[]): VerifiedRelease {
  const { root, now } = opts;

  // 1. size cap, then the envelope's own shape (no payload parsing yet)
  const decoded = parseEnvelope(envelope, 'manifest envelope', LIMITS.envelopeBytes);
  checks.push(`size: ${envelope.length} bytes, within the cap of ${LIMITS.envelopeBytes}`);
  if (decoded.envelope.payloadType !== RELEASE_PAYLOAD_TYPE) {
    throw new AirlockError(
      'EMANIFEST',
      `manifest envelope: payloadType is "${decoded.envelope.payloadType}", expected "${RELEASE_PAYLOAD_TYPE}"`,
      { expected: RELEASE_PAYLOAD_TYPE, found: decoded.envelope.payloadType },
    );
  }
  checks.push(`payload type: ${RELEASE_PAYLOAD_TYPE}`);

  // 2. signatures and threshold over the raw payload bytes
  const role = root.payload.roles.release;
  const signers = verifyThreshold(decoded, role, root.payload.keys, 'manifest');
  checks.push(
    `signatures: ${signers.length} distinct release key${signers.length === 1 ? '' : 's'} verified (threshold ${role.threshold}, ` +
      `trust root version ${root.version}): ${signers.map((s) => s.slice(0, 16)).join(', ')}`,
  );

  // 3. strict parse (canonical form) and schema
  const payload = decoded.payload;
  const digest = sha256Hex(payload);
  const manifest = validateReleaseManifest(parseCanonicalJson(payload, 'manifest payload'));
  checks.push(`payload: canonical JSON, sha256 ${digest}`);
  checks.push(`schema: ${manifest.product} ${manifest.release}, serial ${manifest.serial}, ${manifest.artifacts.length} artifacts`);

  // 4. product
  if (opts.product !== undefined) {
    if (manifest.product !== opts.product) {
      throw new AirlockError('EMANIFEST', `manifest is for product "${manifest.product}", expected "${opts.product}"`, {
        expected: opts.product,
        found: manifest.product,
      });
    }
    checks.push(`product: ${manifest.product}`);
  }

  // 5. rollback
  const before = opts.accepted?.[manifest.product];
  assertNoRollback(before, { product: manifest.product, serial: manifest.serial, digest });
  checks.push(
    before
      ? `rollback: serial ${manifest.serial} ≥ accepted serial ${before.serial}`
      : `rollback: serial ${manifest.serial} (no serial accepted before for ${manifest.product})`,
  );

  // 6. expiry, against the one clock reading
  let expiredAccepted = false;
  const expires = new Date(manifest.expires);
  if (now.getTime() > expires.getTime()) {
    const until = opts.acceptExpiredUntil;
    if (!until || until.getTime() < now.getTime()) {
      throw new AirlockError(
        'EEXPIRED',
        `manifest ${manifest.product} ${manifest.release} expired at ${manifest.expires}` +
          (until ? ` and --accept-expired-until ${until.toISOString()} is already past` : ''),
        { expires: manifest.expires, now: now.toISOString(), ...(until ? { acceptExpiredUntil: until.toISOString() } : {}) },
      );
    }
    expiredAccepted = true;
    checks.push(`expiry: EXPIRED at ${manifest.expires}, accepted until ${until.toISOString()} (--accept-expired-until)`);
  } else {
    checks.push(`expiry: valid until ${manifest.expires}`);
  }

  return {
    manifest,
    envelope: Buffer.from(envelope),
    payload,
    digest,
    signers,
    expiredAccepted,
    accepted: { product: manifest.product, serial: manifest.serial, digest },
    checks,
  };
}

/**
 * The rollback rule, in one place: a serial lower than the accepted one is
 * refused, and so is the accepted serial with another digest (equivocation).
 * The store applies it again under its writer lock before it records a release.
 */
export function assertNoRollback(before: AcceptedSerial | undefined, next: AcceptedSerial): void {
  if (!before) return;
  if (next.serial < before.serial) {
    throw new AirlockError(
      'EROLLBACK',
      `manifest serial ${next.serial} of ${next.product} is lower than the accepted serial ${before.serial}`,
      { product: next.product, found: next.serial, accepted: before.serial },
    );
  }
  if (next.serial === before.serial && next.digest !== before.digest) {
    throw new AirlockError(
      'EROLLBACK',
      `equivocation: serial ${next.serial} of ${next.product} was already accepted with digest ${before.digest}, ` +
        `this manifest has digest ${next.digest}`,
      { product: next.product, serial: next.serial, accepted: before.digest, found: next.digest },
    );
  }
}
