/**
 * parseCanonicalJson checks RFC 8785 form while parsing instead of
 * re-serializing with the `canonicalize` package. These tests hold it to the
 * package: on many varied texts (canonical ones, and near misses with other
 * spacing, key order, escapes, numbers), it accepts exactly those the
 * package would print byte for byte.
 */
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../manifests/canonical.js';
import { decodeBase64Strict } from '../../manifests/dsse.js';
import { parseCanonicalJson, parseStrictJson, type JsonValue } from '../../manifests/json.js';
import { AirlockError } from '../../manifests/errors.js';

/** Deterministic pseudo-random numbers, mulberry32 (a failure reproduces). */
function rng(seed: number): (k: number) => number {
  let s = seed >>> 0;
  return (k) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) % k;
  };
}

const CHARS = ['a', 'B', 'z', '"', '\\', '/', '\n', '\t', '\b', '\f', '\r', '\u0000', '\u0001', '\u001f', '\u007f', 'é', '€', '😀', '\u2028', '\ufeff', ' '];
const KEYS = ['a', 'b', 'B', '', 'é', '€', '😀', '\uffff', '10', '2', '__proto__', 'a\n', 'aa', 'path', 'sha256'];

function randomValue(r: (k: number) => number, depth: number): JsonValue {
  // the top is an object or an array, like a manifest
  switch (depth === 0 ? 4 + r(2) : r(depth > 3 ? 4 : 6)) {
    case 0:
      return [0, 1, -1, 42, -42, 9007199254740991, -9007199254740991, 1e15, 123456789012345][r(9)] ?? 7;
    case 1:
      return Array.from({ length: r(6) }, () => CHARS[r(CHARS.length)]!).join('');
    case 2:
      return [true, false, null][r(3)]!;
    case 3:
      return null;
    case 4:
      return Array.from({ length: r(4) }, () => randomValue(r, depth + 1));
    default: {
      const o: { [k: string]: JsonValue } = {};
      for (let i = r(5); i > 0; i--) {
        const k = KEYS[r(KEYS.length)]!;
        Object.defineProperty(o, k, { value: randomValue(r, depth + 1), enumerable: true, writable: true, configurable: true });
      }
      return o;
    }
  }
}

/** Other spellings of the same value, or of nearly the same text. */
const EDITS = [' ', '\n', ',', '"', '\\u0041', '\\/', '\\u00e9', '\\u001F', '\\u000a', '-0', '0', '01', '1.0', '}', ']', '{"a":1}', '\\ud83d\\ude00', '\\ud800'];

/** What the package says: canonical iff it prints exactly this text. */
function oracle(text: string): 'canonical' | 'not canonical' | 'invalid' {
  const bytes = Buffer.from(text, 'utf8'); // (an edit may split a surrogate pair: compare what the bytes say)
  let value: JsonValue;
  try {
    value = parseStrictJson(bytes);
  } catch {
    return 'invalid';
  }
  return canonicalize(value) === bytes.toString('utf8') ? 'canonical' : 'not canonical';
}

function verdict(text: string): 'canonical' | 'not canonical' | 'invalid' {
  try {
    parseCanonicalJson(Buffer.from(text, 'utf8'));
    return 'canonical';
  } catch (e) {
    if (!(e instanceof AirlockError)) throw e;
    return /canonical form/.test(e.message) ? 'not canonical' : 'invalid';
  }
}

describe('parseCanonicalJson agrees with the canonicalize package', () => {
  it('accepts what the package prints, with the same value', () => {
    const r = rng(1);
    for (let t = 0; t < 3000; t++) {
      const value = randomValue(r, 0);
      const text = canonicalize(value);
      expect(verdict(text), text).toBe('canonical');
      expect(canonicalize(parseCanonicalJson(Buffer.from(text, 'utf8')))).toBe(text);
    }
  });

  it('gives the same verdict on other spellings and near misses', () => {
    const r = rng(2);
    const counts: Record<string, number> = { canonical: 0, 'not canonical': 0, invalid: 0 };
    for (let t = 0; t < 3000; t++) {
      const value = randomValue(r, 0);
      const c = canonicalize(value);
      const i = r(c.length + 1);
      const j = r(c.length);
      const candidates = [
        JSON.stringify(value),
        JSON.stringify(value, null, 1),
        c.slice(0, i) + EDITS[r(EDITS.length)]! + c.slice(i),
        c.slice(0, j) + c.slice(j + 1),
        // an escape spelled another way: \u00XX for a short escape, upper-case hex
        c.replace('\\n', '\\u000a').replace(/\\u00([0-9a-f]{2})/, (_m, h: string) => `\\u00${h.toUpperCase()}`),
      ];
      for (const text of candidates) {
        const want = oracle(text);
        expect(verdict(text), JSON.stringify(text)).toBe(want);
        counts[want]++;
      }
    }
    // the inputs exercise every outcome, not just one
    expect(counts.canonical).toBeGreaterThan(1000);
    expect(counts['not canonical']).toBeGreaterThan(1000);
    expect(counts.invalid).toBeGreaterThan(1000);
  });

  it('refuses escaped spellings of characters that are printed raw, and accepts the package escapes', () => {
    expect(verdict('["\\u00e9"]')).toBe('not canonical');
    expect(verdict('["\\ud83d\\ude00"]')).toBe('not canonical'); // a pair is printed raw
    expect(verdict('["\\ud83d"]')).toBe('invalid'); // a lone surrogate: canonical spelling, but RFC 8785 refuses the value
    expect(verdict('["\\u001F"]')).toBe('not canonical');
    expect(verdict('["\\u001f"]')).toBe('canonical');
    expect(verdict('["\\/"]')).toBe('not canonical');
    expect(verdict('{"\\u0061":1}')).toBe('not canonical');
    expect(verdict('{"a":1,"\\u0061":2}')).toBe('invalid'); // duplicate, whatever the spelling
    expect(verdict('{"b":1,"a":2,"b":3}')).toBe('invalid'); // duplicate after the order broke
    expect(verdict('{"\\u20ac":1,"\\r":2}')).toBe('not canonical');
    expect(verdict('{"\\r":2,"1":3,"€":1}')).toBe('canonical');
  });
});

describe('decodeBase64Strict', () => {
  it('accepts exactly the one spelling Node prints, for every length and last-group value', () => {
    const r = rng(3);
    for (let t = 0; t < 3000; t++) {
      const bytes = Buffer.from(Array.from({ length: r(12) }, () => r(256)));
      const text = bytes.toString('base64');
      expect(decodeBase64Strict(text, 'x').equals(bytes)).toBe(true);
      // flip one character of the last group: accepted only if it is another canonical spelling
      if (text.length === 0) continue;
      const k = text.length - 1 - r(Math.min(4, text.length));
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=';
      const other = text.slice(0, k) + alphabet[r(alphabet.length)]! + text.slice(k + 1);
      const decoded = Buffer.from(other, 'base64');
      const canonical = /^[A-Za-z0-9+/]*={0,2}$/.test(other) && other.length % 4 === 0 && decoded.toString('base64') === other;
      if (canonical) expect(decodeBase64Strict(other, 'x').equals(decoded)).toBe(true);
      else expect(() => decodeBase64Strict(other, 'x')).toThrow(/not valid base64/);
    }
  });
});
