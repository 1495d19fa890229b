/**
 * Does a role's threshold of DISTINCT keys vouch for these bytes? A key
 * counts once however many signatures or key ids name it, and a signature's
 * `keyid` is only a hint of which key to try first: every key of the role is
 * tried, so a wrong hint neither helps an attacker nor hurts a publisher.
 */
import type { KeyObject } from 'node:crypto';
import { AirlockError } from './errors.js';
import type { DecodedEnvelope } from './dsse.js';
import { keyIdOf, publicKeyFromRaw, verifyBytes } from './keys.js';
import type { RoleSpec, RootKey } from './types.js';

/** More signatures than any real role needs: bounds the work a hostile envelope can cause. */
export const MAX_SIGNATURES = 256;

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

/**
 * Returns the canonical key ids of the distinct role keys whose signatures
 * verified; ESIGNATURE when fewer than the threshold.
 */
export function verifyThreshold(
  decoded: DecodedEnvelope,
  role: RoleSpec,
  keys: Readonly<Record<string, RootKey>>,
  what: string,
): string[] {
  if (decoded.sigs.length === 0) {
    throw new AirlockError('ESIGNATURE', `${what} has no signatures (needs ${role.threshold})`, { threshold: role.threshold });
  }
  if (decoded.sigs.length > MAX_SIGNATURES) {
    throw new AirlockError('EMANIFEST', `${what} has ${decoded.sigs.length} signatures, over the cap of ${MAX_SIGNATURES}`);
  }
  const message = decoded.message;
  const candidates = roleKeys(role, keys);
  const counted = new Set<RoleKey>();
  for (const { keyid, sig } of decoded.sigs) {
    // hinted key first (cheap common case), then every other uncounted key
    const order = [...candidates].sort((a, b) => Number(b.aliases.has(keyid ?? '')) - Number(a.aliases.has(keyid ?? '')));
    for (const k of order) {
      if (counted.has(k)) continue;
      if (verifyBytes(k.key, message, sig)) {
        counted.add(k);
        break;
      }
    }
  }
  if (counted.size < role.threshold) {
    throw new AirlockError(
      'ESIGNATURE',
      `${what}: ${counted.size} of the required ${role.threshold} signatures from distinct trusted keys verified` +
        ` (${decoded.sigs.length} signature${decoded.sigs.length === 1 ? '' : 's'} present)`,
      { threshold: role.threshold, verified: counted.size, signatures: decoded.sigs.length },
    );
  }
  return [...counted].map((k) => k.id);
}
