/**
 * Strict JSON for signed documents. `JSON.parse` silently keeps the last of
 * duplicate keys and rounds big numbers, so two readers could see two
 * different manifests in one signed byte string. This parser refuses
 * everything that could be read two ways: duplicate keys at any depth,
 * fractions and exponents, integers beyond ±(2^53 − 1), invalid UTF-8, a
 * byte-order mark, and (for signed payloads) any byte form other than the
 * RFC 8785 canonical one.
 */
import { AirlockError } from './errors.js';
import { canonicalize } from './canonical.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Sticky: matches at `lastIndex` without copying the rest of the text. */
const NUMBER = /-?(0|[1-9][0-9]*)([.eE])?/y;

/** Deep enough for any manifest; shallow enough that hostile nesting cannot blow the stack. */
const MAX_DEPTH = 64;

const fail = (what: string, message: string, at?: number): never => {
  throw new AirlockError('EMANIFEST', `${what}: ${message}${at === undefined ? '' : ` at offset ${at}`}`, {
    ...(at === undefined ? {} : { offset: at }),
  });
};

/** UTF-8 → string, refusing invalid sequences and keeping a BOM (which then fails the parse). */
export function decodeUtf8(bytes: Uint8Array, what = 'document'): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return fail(what, 'is not valid UTF-8');
  }
}

/** Parses JSON text strictly (see the file comment). `what` names the document in messages. */
export function parseStrictJsonText(text: string, what = 'document'): JsonValue {
  let i = 0;
  const n = text.length;

  const ws = (): void => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };

  const value = (depth: number): JsonValue => {
    if (depth > MAX_DEPTH) fail(what, `nested deeper than ${MAX_DEPTH} levels`, i);
    ws();
    const c = text[i];
    if (c === '{') return object(depth);
    if (c === '[') return array(depth);
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    return fail(what, c === undefined ? 'unexpected end of JSON' : `unexpected character ${JSON.stringify(c)}`, i);
  };

  const object = (depth: number): JsonValue => {
    i++; // {
    const out: { [key: string]: JsonValue } = {};
    ws();
    if (text[i] === '}') {
      i++;
      return out;
    }
    for (;;) {
      ws();
      if (text[i] !== '"') fail(what, 'expected a string key', i);
      const keyAt = i;
      const key = string();
      if (Object.prototype.hasOwnProperty.call(out, key)) fail(what, `duplicate key ${JSON.stringify(key)}`, keyAt);
      ws();
      if (text[i] !== ':') fail(what, 'expected ":"', i);
      i++;
      const v = value(depth + 1);
      // "__proto__" must stay an own data property, not swap the prototype; defineProperty
      // only for it, since it turns an object into a slow dictionary.
      if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      else out[key] = v;
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return out;
      }
      fail(what, 'expected "," or "}"', i);
    }
  };

  const array = (depth: number): JsonValue => {
    i++; // [
    const out: JsonValue[] = [];
    ws();
    if (text[i] === ']') {
      i++;
      return out;
    }
    for (;;) {
      out.push(value(depth + 1));
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return out;
      }
      fail(what, 'expected "," or "]"', i);
    }
  };

  const string = (): string => {
    const start = i;
    i++; // opening quote
    let out = '';
    for (;;) {
      // copy the longest plain run in one slice: per-character appends are slow on big manifests
      const runStart = i;
      let c = text.charCodeAt(i);
      while (i < n && c !== 0x22 && c !== 0x5c && c >= 0x20) c = text.charCodeAt(++i);
      if (i > runStart) out += text.slice(runStart, i);
      if (i >= n) fail(what, 'unterminated string', start);
      if (c === 0x22) {
        i++;
        return out;
      }
      if (c < 0x20) fail(what, 'control character in string', i);
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const hex = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail(what, 'bad \\u escape', i - 2);
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
          break;
        }
        default:
          fail(what, 'bad escape in string', i - 2);
      }
    }
  };

  const number = (): number => {
    const start = i;
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail(what, 'bad number', start);
    if (m[2] !== undefined) return fail(what, 'only integers are allowed (no fractions or exponents)', start);
    i += m[0].length;
    const v = Number(m[0]);
    if (!Number.isSafeInteger(v)) fail(what, `integer ${m[0].slice(0, 40)} is beyond ±(2^53 - 1)`, start);
    return v;
  };

  const result = value(0);
  ws();
  if (i !== n) fail(what, 'trailing data after the JSON value', i);
  return result;
}

/** Strict parse of UTF-8 bytes (any formatting): for envelopes and input files. */
export function parseStrictJson(bytes: Uint8Array, what = 'document'): JsonValue {
  return parseStrictJsonText(decodeUtf8(bytes, what), what);
}

/**
 * Strict parse of a signed payload: as `parseStrictJson`, and the bytes must
 * be exactly the RFC 8785 canonical form of what they say.
 */
export function parseCanonicalJson(bytes: Uint8Array, what = 'payload'): JsonValue {
  const text = decodeUtf8(bytes, what);
  const value = parseStrictJsonText(text, what);
  if (canonicalize(value) !== text) fail(what, 'is not in RFC 8785 canonical form (whitespace, key order or escapes differ)');
  return value;
}
