import { describe, expect, it } from 'vitest';
import { parseCanonicalJson, parseStrictJson } from '../../manifests/json.js';
import { expectCode } from './fixtures.js';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('parseStrictJson', () => {
  it('reads ordinary JSON in any formatting', () => {
    expect(parseStrictJson(b(' {"a" : [1, -2, "x\\n\\u00e9"],\n"b":{"c":null,"d":true}} '))).toEqual({
      a: [1, -2, 'x\né'],
      b: { c: null, d: true },
    });
  });

  it.each([
    ['duplicate top-level key', '{"a":1,"a":2}', /duplicate key "a"/],
    ['duplicate nested key', '{"a":{"b":1,"b":1}}', /duplicate key "b"/],
    ['duplicate key spelled with an escape', '{"a":1,"\\u0061":2}', /duplicate key/],
    ['fraction', '{"a":1.0}', /only integers/],
    ['exponent', '{"a":1e3}', /only integers/],
    ['beyond 2^53', '{"a":9007199254740993}', /beyond/],
    ['negative beyond 2^53', '[-9007199254740993]', /beyond/],
    ['leading zero', '[01]', /expected/],
    ['trailing comma', '[1,]', /unexpected/],
    ['trailing data', '{} {}', /trailing/],
    ['single quotes', "{'a':1}", /key/],
    ['raw control char in a string', '["a\u0001"]', /control/],
    ['bad escape', '["\\x41"]', /escape/],
    ['NaN', '[NaN]', /unexpected/],
    ['empty', '', /end/],
    ['BOM', '\ufeff{}', /unexpected/],
  ])('refuses %s', (_name, text, message) => {
    expectCode(() => parseStrictJson(b(text)), 'EMANIFEST', message);
  });

  it('refuses invalid UTF-8', () => {
    expectCode(() => parseStrictJson(Buffer.from([0x22, 0xc3, 0x28, 0x22])), 'EMANIFEST', /UTF-8/);
    expectCode(() => parseStrictJson(Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])), 'EMANIFEST', /UTF-8/);
  });

  it('refuses hostile nesting without blowing the stack', () => {
    expectCode(() => parseStrictJson(b('['.repeat(100_000))), 'EMANIFEST', /nested/);
  });

  it('keeps "__proto__" as a plain own key', () => {
    const v = parseStrictJson(b('{"__proto__":{"x":1}}')) as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(['__proto__']);
  });

  it('accepts the largest safe integers', () => {
    expect(parseStrictJson(b('[9007199254740991,-9007199254740991]'))).toEqual([2 ** 53 - 1, -(2 ** 53 - 1)]);
  });
});

describe('parseCanonicalJson', () => {
  it('accepts the canonical form', () => {
    expect(parseCanonicalJson(b('{"a":1,"b":[2]}'))).toEqual({ a: 1, b: [2] });
  });
  it.each([
    ['whitespace', '{"a":1, "b":[2]}'],
    ['key order', '{"b":[2],"a":1}'],
    ['needless escape', '{"a":"\\u0041"}'],
    ['trailing newline', '{"a":1}\n'],
    ['negative zero', '[-0]'],
  ])('refuses %s', (_name, text) => {
    expectCode(() => parseCanonicalJson(b(text)), 'EMANIFEST', /canonical/);
  });
});
