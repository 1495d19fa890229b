import { describe, expect, it } from 'vitest';
import { parseCanonicalJson, parseStrictJson, parseStrictJsonText } from '../../manifests/json.js';
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

/**
 * RFC 8785 and I-JSON (RFC 7493) refuse lone UTF-16 surrogates: such a string
 * has no UTF-8 form, so two names distinct in the manifest ("a\ud800" and
 * "a\udc00") would become one name (U+FFFD) on disk.
 */
describe('lone surrogates', () => {
  const ESC = [
    ['lone high surrogate', '["\\ud800"]', 'value', 2],
    ['lone low surrogate', '["\\udc00"]', 'value', 2],
    ['high then high', '["\\ud800\\ud800"]', 'value', 2],
    ['high then a plain character', '["\\ud800x"]', 'value', 2],
    ['high then another escape', '["\\ud800\\n"]', 'value', 2],
    ['low then high (a pair in the wrong order)', '["\\udc00\\ud800"]', 'value', 2],
    ['high at the very end of a long string', `["${'a'.repeat(100)}\\udbff"]`, 'value', 102],
    ['in an object value', '{"path":"a\\udfff"}', 'value', 10],
    ['in a key', '{"a\\ud800":1}', 'key', 3],
    ['in a nested key', '{"a":[{"b\\udc00":1}]}', 'key', 9],
  ] as const;

  it.each(ESC)('refuses an escaped %s, naming key or value and the offset of the surrogate', (_name, text, kind, offset) => {
    const err = expectCode(() => parseStrictJson(b(text)), 'EMANIFEST', new RegExp(`lone UTF-16 surrogate .* in a ${kind} .*at offset ${offset}$`));
    expect(err.details.offset).toBe(offset);
    // a signed payload spelled exactly as JSON.stringify spells it is refused too
    expectCode(() => parseCanonicalJson(b(text)), 'EMANIFEST', /lone UTF-16 surrogate/);
  });

  it('refuses a canonical payload whose two paths differ only in a lone surrogate', () => {
    const text = JSON.stringify({ a: ['x\ud800', 'x\udc00'] });
    expect(text).toContain('\\ud800'); // JSON.stringify escapes lone surrogates: this is canonical form
    expectCode(() => parseCanonicalJson(b(text)), 'EMANIFEST', /lone UTF-16 surrogate \\ud800 in a value/);
  });

  it.each([
    ['lone high', '["a\ud800"]', 'value'],
    ['lone low', '["\udc00a"]', 'value'],
    ['lone high in a key', '{"\ud800":1}', 'key'],
    ['lone high before an escape', '["\ud800\\n"]', 'value'],
    ['raw high before an escaped high', '["\ud800\\ud800"]', 'value'],
  ])('refuses a raw %s in text (parseStrictJsonText)', (_name, text, kind) => {
    expectCode(() => parseStrictJsonText(text), 'EMANIFEST', new RegExp(`lone UTF-16 surrogate .* in a ${kind}`));
  });

  it('accepts proper pairs, escaped or raw', () => {
    expect(parseStrictJson(b('["\\ud83d\\ude00","\u{1f600}",{"\\ud83d\\ude00":1}]'))).toEqual(['\u{1f600}', '\u{1f600}', { '\u{1f600}': 1 }]);
    expect(parseStrictJsonText('["\ud83d\ude00"]')).toEqual(['\u{1f600}']);
    expect(parseCanonicalJson(b('["\u{1f600}"]'))).toEqual(['\u{1f600}']);
  });
});
