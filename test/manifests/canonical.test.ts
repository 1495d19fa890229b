import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../manifests/canonical.js';
import { sha256Hex } from '../../manifests/digest.js';
import { expectCode } from './fixtures.js';

describe('canonicalize (RFC 8785)', () => {
  it.each([
    [{ b: 1, a: [true, null, 'x'] }, '{"a":[true,null,"x"],"b":1}'],
    [{ z: { y: 2, x: 1 } }, '{"z":{"x":1,"y":2}}'],
    [{ '\u20ac': 1, '\r': 2, '1': 3 }, '{"\\r":2,"1":3,"€":1}'],
    ['é\u0007', '"é\\u0007"'],
    [[], '[]'],
  ])('%j → %s', (value, text) => {
    expect(canonicalize(value)).toBe(text);
  });

  it('refuses values JSON cannot carry', () => {
    expectCode(() => canonicalize(Number.NaN), 'EMANIFEST');
    expectCode(() => canonicalize(undefined), 'EMANIFEST');
  });
});

describe('sha256Hex', () => {
  it('is lowercase hex of the bytes, string or buffer alike', () => {
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(sha256Hex(Buffer.from('abc'))).toBe(sha256Hex('abc'));
  });
});
