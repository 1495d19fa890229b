/** Release dates of the apt repositories: per product, by serial, never going back (Last-Modified relies on it). */
import { describe, expect, it } from 'vitest';
import { aptDates, poolPath } from '../../../server/http/apt-index.js';
import type { StoredRelease } from '../../../storage/index.js';

const rel = (release: string, product: string, serial: number, issued: string): StoredRelease =>
  ({ release, product, serial, digest: '0'.repeat(64), envelope: Buffer.alloc(0), manifest: { issued } }) as unknown as StoredRelease;

describe('aptDates', () => {
  const now = new Date('2026-06-01T00:00:00Z');

  it('is the issue date, in whole seconds, when serials and dates agree', () => {
    const d = aptDates([rel('1.0', 'p', 1, '2026-01-01T00:00:00.700Z'), rel('1.1', 'p', 2, '2026-02-01T00:00:00Z')], now);
    expect(d.get('1.0')!.toISOString()).toBe('2026-01-01T00:00:00.000Z');
    expect(d.get('1.1')!.toISOString()).toBe('2026-02-01T00:00:00.000Z');
  });

  it('a higher serial issued earlier (or at the same second) still gets a later date; a future date is now', () => {
    const d = aptDates(
      [rel('1.2', 'p', 3, '2026-01-01T00:00:00Z'), rel('1.1', 'p', 2, '2026-03-01T00:00:00Z'), rel('1.3', 'p', 4, '2026-03-01T00:00:00Z'), rel('9', 'p', 9, '2030-01-01T00:00:00Z')],
      now,
    );
    expect(d.get('1.1')!.toISOString()).toBe('2026-03-01T00:00:00.000Z');
    expect(d.get('1.2')!.toISOString()).toBe('2026-03-01T00:00:01.000Z');
    expect(d.get('1.3')!.toISOString()).toBe('2026-03-01T00:00:02.000Z');
    expect(d.get('9')!.toISOString()).toBe(now.toISOString());
  });

  it('products do not affect each other', () => {
    const d = aptDates([rel('a', 'p', 5, '2026-03-01T00:00:00Z'), rel('b', 'q', 1, '2026-01-01T00:00:00Z')], now);
    expect(d.get('b')!.toISOString()).toBe('2026-01-01T00:00:00.000Z');
  });
});

describe('poolPath', () => {
  it('is the digest and the manifest file name', () => {
    expect(poolPath({ kind: 'deb', path: 'debs/hello_2.10-3_amd64.deb', sha256: 'ab'.repeat(32), size: 1, urls: [], package: 'hello', version: '2.10-3', arch: 'amd64' })).toBe(
      `pool/${'ab'.repeat(32)}/hello_2.10-3_amd64.deb`,
    );
  });
});
