import { describe, expect, it } from 'vitest';
import { loadTrustedRoot, readSelfSignedRoot, updateTrustedRoot } from '../../manifests/root.js';
import { expectCode, keys, NOW, rootPayload, signRoot } from './fixtures.js';

const [k0, k1, k2, k3, k4] = keys as [typeof keys[0] & object, typeof keys[0] & object, typeof keys[0] & object, typeof keys[0] & object, typeof keys[0] & object];

describe('loadTrustedRoot', () => {
  it('accepts a root signed by its own root threshold', () => {
    const bytes = signRoot(rootPayload({ root: [k0, k3], rootThreshold: 2, release: [k1] }), [k0, k3]);
    const root = loadTrustedRoot(bytes, NOW);
    expect(root.version).toBe(1);
    expect(root.expires.toISOString()).toBe('2028-01-01T00:00:00.000Z');
    expect(root.bytes.equals(bytes)).toBe(true);
  });

  it('an expired root passes only with an extension that is not past', () => {
    const bytes = signRoot(rootPayload({ root: [k0], release: [k1], expires: '2027-01-01T00:00:00Z' }), [k0]);
    expectCode(() => loadTrustedRoot(bytes, NOW), 'EEXPIRED', /expired at 2027-01-01/);
    expect(loadTrustedRoot(bytes, NOW, { acceptExpiredUntil: new Date('2027-02-01T00:00:00Z') }).version).toBe(1);
    expect(readSelfSignedRoot(bytes).version).toBe(1);
  });
});

describe('updateTrustedRoot', () => {
  const v1 = loadTrustedRoot(signRoot(rootPayload({ root: [k0], release: [k1] }), [k0]), NOW);
  const v2payload = rootPayload({ version: 2, root: [k2], release: [k1] });
  const v2 = signRoot(v2payload, [k0, k2]);
  const v3 = signRoot(rootPayload({ version: 3, root: [k3, k4], rootThreshold: 2, release: [k1] }), [k2, k3, k4]);

  it('follows N → N+1 → N+2 and skips versions already trusted', () => {
    expect(updateTrustedRoot(v1, [v2, v3], NOW).version).toBe(3);
    expect(updateTrustedRoot(v1, [], NOW).version).toBe(1);
    const at2 = updateTrustedRoot(v1, [v2], NOW);
    expect(updateTrustedRoot(at2, [v2, v3], NOW).version).toBe(3);
  });

  it('only the final root must be unexpired', () => {
    const old2 = signRoot({ ...v2payload, expires: '2026-01-01T00:00:00Z' }, [k0, k2]);
    expect(updateTrustedRoot(v1, [old2, v3], NOW).version).toBe(3);
    expectCode(() => updateTrustedRoot(v1, [old2], NOW), 'EEXPIRED');
  });

  it('refuses a gap, and a chain signed by only one side', () => {
    expectCode(() => updateTrustedRoot(v1, [v3], NOW), 'ESIGNATURE', /expected exactly 2/);
    expectCode(() => updateTrustedRoot(v1, [signRoot(v2payload, [k2])], NOW), 'ESIGNATURE', /trusted version 1/);
    expectCode(() => updateTrustedRoot(v1, [signRoot(v2payload, [k0])], NOW), 'ESIGNATURE', /its own root role/);
  });
});
