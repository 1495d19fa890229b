/**
 * The trust gate: the one way a release gets in, on both sides.
 *
 *   local root (out of band) → newer roots offered, each a rotation from the
 *   last → the final root fresh (or extended) → the envelope verified
 *   (signatures, schema, product) → rollback against the serial book → expiry
 *
 * `stage`, `import`, `manifest verify`, POST /stage and `airlock-node` all
 * pass through here; they do the I/O around it (read the files, persist the
 * new serial and a rotated root) and print what `warnings` says. Pure: bytes
 * and a clock in, the verified release or one AirlockError out.
 *
 * Offered roots can come one at a time (`offerRoot`) so a bundle's chain is
 * checked as it streams and never held whole in memory.
 */
import { AirlockError } from './errors.js';
import { assertRootFresh, followRoot, readSelfSignedRoot, type TrustedRoot } from './root.js';
import type { AcceptedSerial } from './types.js';
import { verifyRelease, type VerifiedRelease } from './verify.js';

/** the one clock reading of a command, and --accept-expired-until */
export interface GateClock {
  now: Date;
  /** an expired manifest or trust root is let through until this date (with a warning), nothing else skipped */
  acceptExpiredUntil?: Date | null;
}

/** Newer roots offered in one go (a bundle, a node's --trust) at most; a longer chain is refused unread. */
export const MAX_OFFERED_ROOTS = 256;

export interface GateInput {
  /** the envelope bytes as received */
  envelope: Uint8Array;
  /** root.json bytes got out of band: the store's --trust file, or the node's kept root */
  localRoot: Uint8Array;
  /** newer roots offered (a bundle's chain, a node's new --trust), followed only as rotations from the local root */
  offeredRoots?: Array<Uint8Array | OfferedRoot>;
  /** the serial book: highest serial accepted so far, per product */
  accepted?: Readonly<Record<string, AcceptedSerial>>;
  clock: GateClock;
  /** when set, the manifest must be of this product */
  product?: string;
}

/** an offered root with the name it came by, for the error line */
export interface OfferedRoot {
  bytes: Uint8Array;
  what: string;
}

export interface GateResult extends VerifiedRelease {
  /** the root the envelope was verified against (after any rotation) */
  root: TrustedRoot;
  /** the local root's version: a caller that keeps its root persists `root.bytes` when this is lower */
  localRootVersion: number;
  /** one line each for what only --accept-expired-until let through; the caller prints them */
  warnings: string[];
}

export interface TrustGate {
  /** the root trusted now (the local one, or the newest offered rotation) */
  readonly root: TrustedRoot;
  /**
   * One newer root offered. Versions at or below the trusted one are skipped
   * (chains carry history), except that the trusted version itself with other
   * bytes is refused: two roots of one version is a fork. The next version
   * must be exactly N+1, signed by the root thresholds of N and N+1.
   */
  offerRoot(bytes: Uint8Array, what?: string): void;
  /** Verifies the envelope against the trusted root; the caller persists `accepted` (and a rotated root). */
  admit(envelope: Uint8Array, opts?: { accepted?: Readonly<Record<string, AcceptedSerial>>; product?: string }): GateResult;
}

/** Opens the gate on the local root: size cap, strict form, its self-signature. Freshness is checked at admit, after rotations. */
export function openTrustGate(localRoot: Uint8Array, clock: GateClock, what = 'trust root'): TrustGate {
  const local = readSelfSignedRoot(localRoot, what);
  let root = local;
  let offered = 0;
  return {
    get root() {
      return root;
    },
    offerRoot(bytes, label = `offered root #${offered + 1}`) {
      if (++offered > MAX_OFFERED_ROOTS) {
        throw new AirlockError('EMANIFEST', `more than ${MAX_OFFERED_ROOTS} roots offered; refusing the chain`, { max: MAX_OFFERED_ROOTS });
      }
      root = followRoot(root, bytes, label);
    },
    admit(envelope, opts = {}) {
      const warnings: string[] = [];
      assertRootFresh(root, clock.now, clock);
      if (root.expires.getTime() < clock.now.getTime()) {
        warnings.push(
          `trust root version ${root.version} expired at ${root.payload.expires}; accepted until ` +
            `${clock.acceptExpiredUntil?.toISOString()} because of --accept-expired-until`,
        );
      }
      const verified = verifyRelease(envelope, {
        root,
        now: clock.now,
        acceptExpiredUntil: clock.acceptExpiredUntil ?? null,
        accepted: opts.accepted,
        product: opts.product,
      });
      if (verified.expiredAccepted) {
        const m = verified.manifest;
        warnings.push(
          `manifest ${m.product} ${m.release} expired at ${m.expires}; accepted until ` +
            `${clock.acceptExpiredUntil?.toISOString()} because of --accept-expired-until`,
        );
      }
      return { ...verified, root, localRootVersion: local.version, warnings };
    },
  };
}

/** The whole gate in one call. */
export function passTrustGate(input: GateInput): GateResult {
  const gate = openTrustGate(input.localRoot, input.clock);
  const offered = input.offeredRoots ?? [];
  if (offered.length > MAX_OFFERED_ROOTS) {
    throw new AirlockError('EMANIFEST', `${offered.length} roots offered, more than ${MAX_OFFERED_ROOTS}; refusing the chain`, {
      max: MAX_OFFERED_ROOTS,
    });
  }
  offered.forEach((r, i) => (r instanceof Uint8Array ? gate.offerRoot(r, `offered root #${i + 1}`) : gate.offerRoot(r.bytes, r.what)));
  return gate.admit(input.envelope, { accepted: input.accepted, product: input.product });
}
