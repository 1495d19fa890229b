import { pathToRegexp } from 'path-to-regexp';
import { describe, expect, it } from 'vitest';
import { CACHE_ROUTES, cachePath } from '../../common/cache-api.js';
import { checkHex, decodePath, decodeSegment } from '../../server/http/path-params.js';

/** the raw captures of a pattern, matched as the server's router does (case-sensitive, no optional trailing slash) */
function captures(pattern: string, path: string): string[] | null {
  const m = pathToRegexp(pattern, { sensitive: true, trailing: false }).regexp.exec(path);
  return m ? m.slice(1) : null;
}

describe('cache paths and route patterns', () => {
  it('each builder makes a path its route matches, and one decode gives back what was put in', () => {
    const hex = 'ab'.repeat(32);
    expect(captures(CACHE_ROUTES.releases, cachePath.releases())).toEqual([]);
    const [release] = captures(CACHE_ROUTES.manifest, cachePath.manifest('3.6.2+build 1'))!;
    expect(decodeSegment(release!, 'release')).toBe('3.6.2+build 1');
    const [digest] = captures(CACHE_ROUTES.blob, cachePath.blob(hex))!;
    expect(checkHex(decodeSegment(digest!, 'digest'), 'digest')).toBe(hex);
    const [r, path] = captures(CACHE_ROUTES.file, cachePath.file('1.0', 'debs/a b%c#d?.deb'))!;
    expect([decodeSegment(r!, 'release'), decodePath(path!, 'path')]).toEqual(['1.0', 'debs/a b%c#d?.deb']);
    expect(captures(CACHE_ROUTES.aptRoot, `${cachePath.aptRepository('1.0')}/`)).toEqual(['1.0']);
    expect(captures(CACHE_ROUTES.gemsRoot, cachePath.gemSource('1.0+b 1'))).toEqual(['1.0%2Bb%201']);
    expect(captures(CACHE_ROUTES.gems, `${cachePath.gemSource('1.0')}info/rack`)).toEqual(['1.0', 'info/rack']);
    expect(captures(CACHE_ROUTES.apt, `${cachePath.aptProduct('stack ato')}/dists/current/InRelease`)).toEqual(['stack%20ato', 'dists/current/InRelease']);
    expect(captures(CACHE_ROUTES.aptKey, cachePath.aptKey())).toEqual([]);
    expect(captures(CACHE_ROUTES.aptKeyArmored, cachePath.aptKey(true))).toEqual([]);
    // the key paths are one segment: no release route takes them
    expect(captures(CACHE_ROUTES.apt, cachePath.aptKey())).toBeNull();
    expect(captures(CACHE_ROUTES.aptRoot, cachePath.aptKey())).toBeNull();
  });

  it('a release name with a slash stays one segment (encoded), which the server then refuses', () => {
    const path = cachePath.manifest('a/b');
    expect(path).toBe('/releases/a%2Fb/manifest');
    expect(() => decodeSegment(captures(CACHE_ROUTES.manifest, path)![0]!, 'release')).toThrow(/unsafe path segment/);
  });

  it('OCI names of several segments are one capture', () => {
    expect(captures(CACHE_ROUTES.v2Manifest, '/v2/stackato/router/manifests/3.6.2')).toEqual(['stackato/router', '3.6.2']);
    expect(captures(CACHE_ROUTES.v2Blob, `/v2/a/b/c/blobs/sha256:${'0'.repeat(64)}`)).toEqual(['a/b/c', `sha256:${'0'.repeat(64)}`]);
    expect(captures(CACHE_ROUTES.v2Tags, '/v2/a/tags/list')).toEqual(['a']);
  });
});
