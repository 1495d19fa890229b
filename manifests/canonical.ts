/**
 * RFC 8785 (JSON Canonicalization Scheme) via the `canonicalize` package, so
 * one manifest has exactly one byte form and therefore one digest.
 */
import canonicalizeModule from 'canonicalize';
import { AirlockError } from './errors.js';

type Serialize = (input: unknown) => string | undefined;

// The package is CommonJS with an ESM-style `export default` in its typings:
// under NodeNext TypeScript sees `{ default: fn }` while Node hands us `fn`.
const serialize: Serialize =
  (canonicalizeModule as unknown as { default?: Serialize }).default ?? (canonicalizeModule as unknown as Serialize);

/** The RFC 8785 text of a JSON value; EMANIFEST for values JSON cannot carry (undefined, NaN, Infinity…). */
export function canonicalize(value: unknown): string {
  let text: string | undefined;
  try {
    text = serialize(value);
  } catch (e) {
    throw new AirlockError('EMANIFEST', `cannot canonicalize value: ${(e as Error).message}`);
  }
  if (text === undefined) throw new AirlockError('EMANIFEST', 'cannot canonicalize value: not representable in JSON');
  return text;
}

/** The canonical form as UTF-8 bytes (what gets signed and hashed). */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalize(value), 'utf8');
}
