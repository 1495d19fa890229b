/**
 * Strict JSON for signed documents. `JSON.parse` silently keeps the last of
 * duplicate keys and rounds big numbers, so two readers could see two
 * different manifests in one signed byte string. This parser refuses
 * everything that could be read two ways: duplicate keys at any depth,
 * fractions and exponents, integers beyond ±(2^53 − 1), invalid UTF-8, a
 * byte-order mark, lone UTF-16 surrogates (escaped or raw: they have no UTF-8
 * form, so "a\ud800" and "a\udc00" would be one name on disk; RFC 8785 and
 * I-JSON refuse them), and (for signed payloads) any byte form other than the
 * RFC 8785 canonical one.
 *
 * Speed matters: a 100,000-artifact payload is ~32 MiB and must verify in
 * well under two seconds. So it is one pass with no regexes per token, and
 * the canonical form is checked while parsing (see `Parser.canonical`)
 * instead of re-serializing the whole value and comparing texts.
 */
import { isUtf8 } from 'node:buffer';
import { AirlockError } from './errors.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Deep enough for any manifest; shallow enough that hostile nesting cannot blow the stack. */
const MAX_DEPTH = 64;

/** A run of plain string characters; a bare class star cannot backtrack. Used once a string is long. */
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;
/** Strings shorter than this are scanned char by char (a regex call costs more than it saves). */
const SCAN_BEFORE_REGEX = 64;
/**
 * Short strings (keys like "sha256", values like "file") repeat on every
 * artifact; V8 copies strings this short instead of slicing, so each parser
 * keeps the last one seen per slot and hands the same string out again.
 * Fewer survivors to promote, and keys arrive already internalized.
 */
const SHORT = 12;
const SLOTS = 512;

const fail = (what: string, message: string, at?: number): never => {
  throw new AirlockError('EMANIFEST', `${what}: ${message}${at === undefined ? '' : ` at offset ${at}`}`, {
    ...(at === undefined ? {} : { offset: at }),
  });
};

/** A high surrogate not followed by a low one, or a low one not preceded by a high one (code units, no `u` flag). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const isSurrogate = (c: number): boolean => c >= 0xd800 && c <= 0xdfff;

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);

/** UTF-8 → string, refusing invalid sequences and keeping a BOM (which then fails the parse). */
export function decodeUtf8(bytes: Uint8Array, what = 'document'): string {
  // isUtf8 + toString is several times faster than a fatal TextDecoder on big payloads,
  // refuses the same sequences (overlongs, surrogates, truncation) and keeps a BOM.
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isUtf8(buf)) return fail(what, 'is not valid UTF-8');
  return buf.toString('utf8');
}

/**
 * One strict parse. When `canonical` stays true to the end, the text is
 * byte for byte what RFC 8785 (the `canonicalize` package) would print for
 * the value: no whitespace, keys in strictly increasing UTF-16 order, integers
 * in shortest form (so no "-0"), and every string spelled as JSON.stringify
 * spells it. Those are the only freedoms JSON leaves, so nothing else needs
 * comparing. A non-canonical text is still parsed to the end, so a strict
 * error later in it wins, as it did when canonical form was checked after.
 */
class Parser {
  i = 0;
  readonly n: number;
  canonical = true;
  private readonly short: Array<string | undefined> = new Array<string | undefined>(SLOTS);

  /**
   * @param rawSurrogates the text itself may hold lone surrogates: false for
   * text decoded from valid UTF-8 (which has none), so only escapes are checked
   */
  constructor(
    readonly text: string,
    readonly what: string,
    readonly rawSurrogates = false,
  ) {
    this.n = text.length;
  }

  ws(): void {
    const { text, n } = this;
    let i = this.i;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
    if (i !== this.i) {
      this.canonical = false;
      this.i = i;
    }
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) fail(this.what, `nested deeper than ${MAX_DEPTH} levels`, this.i);
    this.ws();
    const { text, i } = this;
    const c = text.charCodeAt(i);
    if (c === 0x7b) return this.object(depth); // {
    if (c === 0x5b) return this.array(depth); // [
    if (c === 0x22) return this.string(); // "
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (text.startsWith('true', i)) {
      this.i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      this.i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      this.i += 4;
      return null;
    }
    return fail(this.what, i >= this.n ? 'unexpected end of JSON' : `unexpected character ${JSON.stringify(text[i])}`, i);
  }

  object(depth: number): JsonValue {
    const { text, what } = this;
    this.i++; // {
    const out: { [key: string]: JsonValue } = {};
    this.ws();
    if (text.charCodeAt(this.i) === 0x7d) {
      this.i++;
      return out;
    }
    // While keys come in strictly increasing order none can repeat, so the
    // duplicate lookup is only needed once the order breaks.
    let previous: string | null = null;
    let sorted = true;
    for (;;) {
      this.ws();
      if (text.charCodeAt(this.i) !== 0x22) fail(what, 'expected a string key', this.i);
      const keyAt = this.i;
      const key = this.string(true);
      if (sorted && previous !== null && !(previous < key)) {
        sorted = false;
        this.canonical = false;
      }
      if (!sorted && Object.prototype.hasOwnProperty.call(out, key)) fail(what, `duplicate key ${JSON.stringify(key)}`, keyAt);
      previous = key;
      this.ws();
      if (text.charCodeAt(this.i) !== 0x3a) fail(what, 'expected ":"', this.i);
      this.i++;
      const v = this.value(depth + 1);
      // "__proto__" must stay an own data property, not swap the prototype; defineProperty
      // only for it, since it turns an object into a slow dictionary.
      if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
      else out[key] = v;
      this.ws();
      const c = text.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        continue;
      }
      if (c === 0x7d) {
        this.i++;
        return out;
      }
      fail(what, 'expected "," or "}"', this.i);
    }
  }

  array(depth: number): JsonValue {
    const { text, what } = this;
    this.i++; // [
    const out: JsonValue[] = [];
    this.ws();
    if (text.charCodeAt(this.i) === 0x5d) {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = text.charCodeAt(this.i);
      if (c === 0x2c) {
        this.i++;
        continue;
      }
      if (c === 0x5d) {
        this.i++;
        return out;
      }
      fail(what, 'expected "," or "]"', this.i);
    }
  }

  /** Index of the first `"`, `\` or control character at or after `from` (n when none). */
  plainRunEnd(from: number): number {
    const { text, n } = this;
    let i = from;
    const scanEnd = Math.min(n, from + SCAN_BEFORE_REGEX);
    while (i < scanEnd) {
      const c = text.charCodeAt(i);
      if (c === 0x22 || c === 0x5c || c < 0x20) return i;
      i++;
    }
    if (i >= n) return n;
    PLAIN_RUN.lastIndex = i;
    PLAIN_RUN.test(text);
    return PLAIN_RUN.lastIndex;
  }

  /**
   * EMANIFEST naming the first lone surrogate of the string that starts at
   * `start` and decoded to `out`, when it has one.
   */
  refuseLoneSurrogate(out: string, start: number, isKey: boolean): void {
    const lone = LONE_SURROGATE.exec(out);
    if (!lone) return;
    // map the decoded index back to the text (escapes are longer than what they decode to)
    const { text } = this;
    let at = start + 1;
    for (let decoded = 0; decoded < lone.index; decoded++) at += text.charCodeAt(at) !== 0x5c ? 1 : text.charCodeAt(at + 1) === 0x75 ? 6 : 2;
    const unit = `\\u${lone[0]!.charCodeAt(0).toString(16)}`;
    const shown = JSON.stringify(out.length > 60 ? `${out.slice(0, 60)}…` : out);
    fail(this.what, `lone UTF-16 surrogate ${unit} in a ${isKey ? 'key' : 'value'} ${shown} (it has no UTF-8 form; RFC 8785 refuses it)`, at);
  }

  string(isKey = false): string {
    const { text, n, what } = this;
    const start = this.i;
    let i = this.plainRunEnd(start + 1);
    // the common case: no escapes, one slice
    if (i < n && text.charCodeAt(i) === 0x22) {
      this.i = i + 1;
      if (this.rawSurrogates) this.refuseLoneSurrogate(text.slice(start + 1, i), start, isKey);
      const len = i - start - 1;
      if (len === 0 || len > SHORT) return text.slice(start + 1, i);
      const slot = (len * 31 + text.charCodeAt(start + 1) * 7 + text.charCodeAt(i - 1)) & (SLOTS - 1);
      const known = this.short[slot];
      if (known !== undefined && known.length === len && text.startsWith(known, start + 1)) return known;
      return (this.short[slot] = text.slice(start + 1, i));
    }
    let out = text.slice(start + 1, i);
    let surrogateEscape = false;
    for (;;) {
      if (i >= n) fail(what, 'unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        this.i = i + 1;
        if (surrogateEscape || this.rawSurrogates) this.refuseLoneSurrogate(out, start, isKey);
        // an escaped string is canonical only if spelled exactly as JSON.stringify spells it
        if (this.canonical && JSON.stringify(out) !== text.slice(start, i + 1)) this.canonical = false;
        return out;
      }
      if (c < 0x20) fail(what, 'control character in string', i);
      // c is a backslash
      const e = text.charCodeAt(i + 1);
      i += 2;
      switch (e) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += '\\';
          break;
        case 0x2f:
          out += '/';
          break;
        case 0x62:
          out += '\b';
          break;
        case 0x66:
          out += '\f';
          break;
        case 0x6e:
          out += '\n';
          break;
        case 0x72:
          out += '\r';
          break;
        case 0x74:
          out += '\t';
          break;
        case 0x75: {
          // \uXXXX
          if (i + 4 > n || !isHex(text.charCodeAt(i)) || !isHex(text.charCodeAt(i + 1)) || !isHex(text.charCodeAt(i + 2)) || !isHex(text.charCodeAt(i + 3))) {
            fail(what, 'bad \\u escape', i - 2);
          }
          const unit = parseInt(text.slice(i, i + 4), 16);
          if (isSurrogate(unit)) surrogateEscape = true; // paired or not: checked once the string ends
          out += String.fromCharCode(unit);
          i += 4;
          break;
        }
        default:
          fail(what, 'bad escape in string', i - 2);
      }
      const runStart = i;
      i = this.plainRunEnd(i);
      if (i > runStart) out += text.slice(runStart, i);
    }
  }

  /** -?(0|[1-9][0-9]*), and never followed by a fraction or exponent. */
  number(): number {
    const { text, n, what } = this;
    const start = this.i;
    let i = start;
    const negative = text.charCodeAt(i) === 0x2d;
    if (negative) i++;
    let c = text.charCodeAt(i);
    let v = 0;
    if (c === 0x30) {
      i++;
    } else if (c >= 0x31 && c <= 0x39) {
      while (i < n && c >= 0x30 && c <= 0x39) {
        v = v * 10 + (c - 0x30);
        c = text.charCodeAt(++i);
      }
    } else {
      return fail(what, 'bad number', start);
    }
    c = text.charCodeAt(i);
    if (c === 0x2e || c === 0x65 || c === 0x45) return fail(what, 'only integers are allowed (no fractions or exponents)', start);
    this.i = i;
    // past 15 digits the running sum may have rounded: read the literal the usual way
    if (i - start > 15) v = Number(text.slice(start, i));
    else if (negative) v = -v;
    if (!Number.isSafeInteger(v)) fail(what, `integer ${text.slice(start, Math.min(i, start + 40))} is beyond ±(2^53 - 1)`, start);
    if (negative && v === 0) this.canonical = false; // "-0" prints as "0"
    return v;
  }

  document(): JsonValue {
    const result = this.value(0);
    this.ws();
    if (this.i !== this.n) fail(this.what, 'trailing data after the JSON value', this.i);
    return result;
  }
}

/** Parses JSON text strictly (see the file comment). `what` names the document in messages. */
export function parseStrictJsonText(text: string, what = 'document'): JsonValue {
  // a JS string may hold raw lone surrogates; one native scan says whether each string must be checked
  return new Parser(text, what, LONE_SURROGATE.test(text)).document();
}

/** Strict parse of UTF-8 bytes (any formatting): for envelopes and input files. */
export function parseStrictJson(bytes: Uint8Array, what = 'document'): JsonValue {
  return new Parser(decodeUtf8(bytes, what), what).document();
}

/**
 * Strict parse of a signed payload: as `parseStrictJson`, and the bytes must
 * be exactly the RFC 8785 canonical form of what they say.
 */
export function parseCanonicalJson(bytes: Uint8Array, what = 'payload'): JsonValue {
  const parser = new Parser(decodeUtf8(bytes, what), what);
  const value = parser.document();
  if (!parser.canonical) fail(what, 'is not in RFC 8785 canonical form (whitespace, key order or escapes differ)');
  return value;
}
