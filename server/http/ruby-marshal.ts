/**
 * A writer for Ruby's Marshal format 4.8, just the part RubyGems' indexes
 * need: nil, true/false, small integers, strings (UTF-8 or binary), symbols,
 * arrays, hashes, objects with instance variables (`o`), classes with
 * `marshal_dump` (`U`: Gem::Version, Gem::Requirement) and with `_dump`
 * (`u`: Gem::Specification, whose `_dump` is itself a Marshal string).
 *
 * Values are written fresh each time (never as `@` object links), which any
 * reader accepts; symbols are written once and then linked (`;`), as Ruby does.
 */

export type RubyValue =
  | null
  | boolean
  | number
  | string
  | RubyValue[]
  | { $: 'bytes'; bytes: Buffer }
  | { $: 'sym'; name: string }
  | { $: 'hash'; entries: Array<[RubyValue, RubyValue]> }
  | { $: 'object'; cls: string; ivars: Array<[string, RubyValue]> }
  | { $: 'user-marshal'; cls: string; data: RubyValue }
  | { $: 'user-def'; cls: string; bytes: Buffer };

export const rb = {
  sym: (name: string): RubyValue => ({ $: 'sym', name }),
  bytes: (bytes: Buffer): RubyValue => ({ $: 'bytes', bytes }),
  hash: (entries: Array<[RubyValue, RubyValue]>): RubyValue => ({ $: 'hash', entries }),
  object: (cls: string, ivars: Array<[string, RubyValue]>): RubyValue => ({ $: 'object', cls, ivars }),
  userMarshal: (cls: string, data: RubyValue): RubyValue => ({ $: 'user-marshal', cls, data }),
  userDef: (cls: string, bytes: Buffer): RubyValue => ({ $: 'user-def', cls, bytes }),
};

class Writer {
  private readonly parts: number[] = [];
  private readonly symbols = new Map<string, number>();

  byte(b: number): void {
    this.parts.push(b & 0xff);
  }

  /** Ruby's w_long: one byte for -123..122, else a signed length byte and 1–4 little-endian bytes */
  long(n: number): void {
    if (!Number.isInteger(n) || n < -(2 ** 30) || n >= 2 ** 30) throw new RangeError(`marshal: integer ${n} out of range`);
    if (n === 0) return this.byte(0);
    if (n > 0 && n < 123) return this.byte(n + 5);
    if (n < 0 && n > -124) return this.byte(n - 5);
    const out: number[] = [];
    let x = n;
    for (let i = 1; i <= 4; i++) {
      out.push(x & 0xff);
      x >>= 8;
      if (x === 0) {
        this.byte(i);
        break;
      }
      if (x === -1) {
        this.byte(-i);
        break;
      }
    }
    for (const b of out) this.byte(b);
  }

  raw(b: Buffer): void {
    this.long(b.length);
    for (const x of b) this.parts.push(x);
  }

  symbol(name: string): void {
    const link = this.symbols.get(name);
    if (link !== undefined) {
      this.byte(0x3b); // ;
      this.long(link);
      return;
    }
    this.symbols.set(name, this.symbols.size);
    this.byte(0x3a); // :
    this.raw(Buffer.from(name, 'latin1'));
  }

  value(v: RubyValue): void {
    if (v === null) return this.byte(0x30); // 0
    if (v === true) return this.byte(0x54); // T
    if (v === false) return this.byte(0x46); // F
    if (typeof v === 'number') {
      this.byte(0x69); // i
      return this.long(v);
    }
    if (typeof v === 'string') {
      // a UTF-8 string: I"…" with one ivar, E = true
      this.byte(0x49);
      this.byte(0x22);
      this.raw(Buffer.from(v, 'utf8'));
      this.long(1);
      this.symbol('E');
      return this.byte(0x54);
    }
    if (Array.isArray(v)) {
      this.byte(0x5b); // [
      this.long(v.length);
      for (const e of v) this.value(e);
      return;
    }
    switch (v.$) {
      case 'bytes':
        this.byte(0x22);
        return this.raw(v.bytes);
      case 'sym':
        return this.symbol(v.name);
      case 'hash':
        this.byte(0x7b); // {
        this.long(v.entries.length);
        for (const [k, val] of v.entries) {
          this.value(k);
          this.value(val);
        }
        return;
      case 'object':
        this.byte(0x6f); // o
        this.symbol(v.cls);
        this.long(v.ivars.length);
        for (const [name, val] of v.ivars) {
          this.symbol(name);
          this.value(val);
        }
        return;
      case 'user-marshal':
        this.byte(0x55); // U
        this.symbol(v.cls);
        return this.value(v.data);
      case 'user-def':
        this.byte(0x75); // u
        this.symbol(v.cls);
        return this.raw(v.bytes);
    }
  }

  done(): Buffer {
    return Buffer.from(this.parts);
  }
}

/** `Marshal.dump(v)` for the values above: version 4.8, then the value. */
export function marshalDump(v: RubyValue): Buffer {
  const w = new Writer();
  w.byte(4);
  w.byte(8);
  w.value(v);
  return w.done();
}
