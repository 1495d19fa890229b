import { describe, expect, it } from 'vitest';
import { assertSafePath, assertUniquePaths, unsafePathReason } from '../../manifests/paths.js';
import { expectCode } from './fixtures.js';

describe('assertSafePath', () => {
  it.each(['a', 'components/router.tgz', 'a/b/c.d', '..a/b..', '.hidden/x', 'a b/ü'])('accepts %j', (p) => {
    expect(unsafePathReason(p)).toBeNull();
    assertSafePath(p);
  });
  it.each([
    ['', /empty/],
    ['../x', /"\.\."/],
    ['a/../b', /"\.\."/],
    ['a/..', /"\.\."/],
    ['/etc/passwd', /absolute/],
    ['a//b', /empty segment/],
    ['a/', /empty segment/],
    ['./a', /"\."/],
    ['a/./b', /"\."/],
    ['a\\b', /backslash/],
    ['a\0b', /NUL/],
    ['a\nb', /control/],
    ['x'.repeat(1025), /longer/],
  ])('refuses %j', (p, message) => {
    const err = expectCode(() => assertSafePath(p, 'artifacts[2]'), 'EPATH', message);
    expect(err.message).toMatch(/^artifacts\[2\]: /);
  });
});

describe('assertUniquePaths', () => {
  it('accepts distinct paths', () => assertUniquePaths(['a/b', 'a/c', 'b']));
  it('refuses a repeat, naming both places', () => {
    expectCode(() => assertUniquePaths(['a', 'b', 'a']), 'EPATH', /artifacts\[2\].*artifacts\[0\]/);
  });
  it('refuses a path under another artifact', () => {
    expectCode(() => assertUniquePaths(['a/b/c', 'a/b']), 'EPATH', /lies under/);
  });
});
