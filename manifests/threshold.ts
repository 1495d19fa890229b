/**
 * Does a role's threshold of DISTINCT keys vouch for these bytes? A key
 * counts once however many signatures or key ids name it.
 *
 * The work is bounded by the role, not by the envelope: every ed25519 check
 * hashes the whole signed message (up to LIMITS.envelopeBytes), and forged
 * signatures cost an attacker nothing. So:
 * - a signature's `keyid` picks the one key it is checked against (any id the
 *   root lists for that key, or its canonical id); a keyid naming no key of
 *   the role is skipped without any crypto;
 * - a signature without a keyid is checked against the role keys no hint
 *   named, in role order;
 * - each key is checked at most once, so at most one check per role key;
 * - a malformed (not 64-byte) signature costs nothing and uses up no key;
 * - the threshold is refused before any check when it cannot be reached, and
 *   checking stops as soon as it is met.
 * A hint therefore never makes a signature count; a wrong one only makes it
 * not count, which anyone able to edit the envelope could do anyway.
 */
import type { KeyObject } from 'node:crypto';
import { AirlockError } from './errors.js';
import type { DecodedEnvelope } from './dsse.js';
import { ED25519_SIGNATURE_LENGTH, keyIdOf, publicKeyFromRaw, verifyBytes } from './keys.js';
import { LIMITS, type RoleSpec, type RootKey } from './types.js';

/** More signatures than any real envelope carries (kept for callers of the old name). */
export const MAX_SIGNATURES = LIMITS.signatures;

interface RoleKey {
  /** the canonical key id (sha256 of the raw key) */
  id: string;
  /** every key id the root lists for this key */
  aliases: Set<string>;
  key: KeyObject;
}

/** The role's keys, one entry per distinct public key. */
export function roleKeys(role: RoleSpec, keys: Readonly<Record<string, RootKey>>): RoleKey[] {
  const byRaw = new Map<string, RoleKey>();
  for (const keyid of role.keyids) {
    const entry = keys[keyid];
    if (!entry) continue; // schema refuses this; never trust an unlisted id
    const raw = Buffer.from(entry.public, 'base64');
    const hex = raw.toString('hex');
    const known = byRaw.get(hex);
    if (known) known.aliases.add(keyid);
    else byRaw.set(hex, { id: keyIdOf(raw), aliases: new Set([keyid]), key: publicKeyFromRaw(raw) });
  }
  return [...byRaw.values()];
}

export type SignatureCheck = (key: KeyObject, message: Uint8Array, sig: Uint8Array) => boolean;

export interface ThresholdOptions {
  /** the ed25519 check (default verifyBytes); tests count the checks through it */
  verify?: SignatureCheck;
}

/**
 * Returns the canonical key ids of the distinct role keys whose signatures
 * verified; ESIGNATURE when fewer than the threshold, EMANIFEST over the
 * signature cap.
 */
export function verifyThreshold(
  decoded: DecodedEnvelope,
  role: RoleSpec,
  keys: Readonly<Record<string, RootKey>>,
  what: string,
  opts: ThresholdOptions = {},
): string[] {
  const check = opts.verify ?? verifyBytes;
  const present = decoded.sigs.length;
  if (present === 0) {
    throw new AirlockError('ESIGNATURE', `${what} has no signatures (needs ${role.threshold})`, { threshold: role.threshold });
  }
  if (present > LIMITS.signatures) {
    throw new AirlockError('EMANIFEST', `${what} has ${present} signatures, over the cap of ${LIMITS.signatures}`, {
      signatures: present,
      limit: LIMITS.signatures,
    });
  }

  const candidates = roleKeys(role, keys);
  const byId = new Map<string, RoleKey>();
  for (const k of candidates) {
    byId.set(k.id, k);
    for (const alias of k.aliases) byId.set(alias, k);
  }

  // Plan before any crypto: one signature per hinted key (the first naming it),
  // the unhinted signatures for the keys no hint named.
  const hinted = new Map<RoleKey, Buffer>();
  const unhinted: Buffer[] = [];
  let strangers = 0;
  for (const { keyid, sig } of decoded.sigs) {
    if (sig.length !== ED25519_SIGNATURE_LENGTH) continue;
    if (keyid === undefined) {
      unhinted.push(sig);
      continue;
    }
    const k = byId.get(keyid);
    if (k === undefined) strangers++;
    else if (!hinted.has(k)) hinted.set(k, sig);
  }
  const spare = candidates.filter((k) => !hinted.has(k));

  const counted: RoleKey[] = [];
  let checks = 0;
  const refuse = (): never => {
    const presentText = `${present} signature${present === 1 ? '' : 's'} present` + (strangers > 0 ? `, ${strangers} naming no key of this role` : '');
    throw new AirlockError(
      'ESIGNATURE',
      checks === 0
        ? `${what}: at most ${hinted.size + Math.min(unhinted.length, spare.length)} of the required ${role.threshold} signatures` +
            ` could come from distinct trusted keys (${presentText}); refused without checking them`
        : `${what}: ${counted.length} of the required ${role.threshold} signatures from distinct trusted keys verified (${presentText})`,
      { threshold: role.threshold, verified: counted.length, signatures: present, checked: checks },
    );
  };
  // what the unchecked signatures could still add, at best
  let hintedLeft = hinted.size;
  const reachable = (unhintedLeft: number, spareLeft: number): boolean =>
    counted.length + hintedLeft + Math.min(unhintedLeft, spareLeft) >= role.threshold;

  if (!reachable(unhinted.length, spare.length)) refuse();
  for (const [k, sig] of hinted) {
    checks++;
    hintedLeft--;
    if (check(k.key, decoded.message, sig)) counted.push(k);
    if (counted.length >= role.threshold) return counted.map((c) => c.id);
    if (!reachable(unhinted.length, spare.length)) refuse();
  }
  let next = 0; // spare keys before `next` have been checked once already
  for (let u = 0; u < unhinted.length; u++) {
    const sig = unhinted[u]!;
    while (next < spare.length) {
      const k = spare[next++]!;
      checks++;
      if (check(k.key, decoded.message, sig)) {
        counted.push(k);
        break;
      }
    }
    if (counted.length >= role.threshold) return counted.map((c) => c.id);
    if (!reachable(unhinted.length - u - 1, spare.length - next)) break;
  }
  return refuse();
}
