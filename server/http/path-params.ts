/**
 * Turns the raw (still percent-encoded) request path into safe segments.
 * Every path parameter goes through here, so traversal is refused in one
 * place whatever its spelling: `..`, `%2e%2e`, an encoded `/` or `\`, NUL,
 * or malformed percent-encoding all end as EPATH (400) before any lookup.
 */
import { AirlockError } from '../../manifests/errors.js';

const HEX64 = /^[0-9a-f]{64}$/;

export function decodeSegment(raw: string, where: string): string {
  let s: string;
  try {
    s = decodeURIComponent(raw);
  } catch {
    throw new AirlockError('EPATH', `${where}: malformed percent-encoding in "${raw.slice(0, 80)}"`);
  }
  if (s === '' || s === '.' || s === '..' || /[/\\\0]/.test(s)) {
    throw new AirlockError('EPATH', `${where}: unsafe path segment "${s.slice(0, 80)}"`, { segment: s });
  }
  return s;
}

/** `a/b/c` (raw) → decoded, checked, joined relative path; `.` segments are dropped when `dropDots` (apt asks for `./Packages`). */
export function decodePath(raw: string, where: string, dropDots = false): string {
  const parts = raw.split('/').filter((p, i, all) => !(dropDots && p === '.') && !(p === '' && i === all.length - 1 && i > 0));
  if (parts.length === 0) throw new AirlockError('EPATH', `${where}: empty path`);
  return parts.map((p) => decodeSegment(p, where)).join('/');
}

/** EPATH unless 64 lowercase hex characters. */
export function checkHex(hex: string, where: string): string {
  if (!HEX64.test(hex)) {
    throw new AirlockError('EPATH', `${where}: "${hex.slice(0, 80)}" is not a sha256 digest (64 lowercase hex characters)`);
  }
  return hex;
}
