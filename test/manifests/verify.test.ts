import { describe, expect, it } from 'vitest';
import { verifyRelease } from '../../manifests/verify.js';
import { canon, defaultRoot, expectCode, keys, manifest, NOW, signed } from './fixtures.js';
import { sha256Hex } from '../../manifests/digest.js';

describe('verifyRelease', () => {
  const root = defaultRoot();

  it('returns the manifest, its digest, signers, the new accepted serial and the checks in order', () => {
    const env = signed();
    const v = verifyRelease(env, { root, now: NOW, product: 'stackato' });
    expect(v.manifest.serial).toBe(17);
    expect(v.digest).toBe(sha256Hex(canon(manifest())));
    expect(v.payload.equals(canon(manifest()))).toBe(true);
    expect(v.envelope.equals(env)).toBe(true);
    expect(v.signers).toEqual([keys[1]!.keyid]);
    expect(v.expiredAccepted).toBe(false);
    expect(v.accepted).toEqual({ product: 'stackato', serial: 17, digest: v.digest });
    expect(v.checks.map((c) => c.split(':')[0])).toEqual([
      'size',
      'payload type',
      'signatures',
      'payload',
      'schema',
      'product',
      'rollback',
      'expiry',
    ]);
  });

  it('a higher serial and the same serial with the same digest pass', () => {
    const v = verifyRelease(signed(), { root, now: NOW });
    const accepted = { stackato: { product: 'stackato', serial: 16, digest: 'x' } };
    expect(verifyRelease(signed(), { root, now: NOW, accepted }).accepted.serial).toBe(17);
    expect(verifyRelease(signed(), { root, now: NOW, accepted: { stackato: v.accepted } }).digest).toBe(v.digest);
    // another product's serial does not matter
    expect(verifyRelease(signed(), { root, now: NOW, accepted: { other: { product: 'other', serial: 99, digest: 'y' } } })).toBeTruthy();
  });

  it('a threshold of 2 needs two distinct release keys', () => {
    const root2 = defaultRoot(2);
    expectCode(() => verifyRelease(signed(), { root: root2, now: NOW }), 'ESIGNATURE', /1 of the required 2/);
    expect(verifyRelease(signed(manifest(), [keys[1]!, keys[2]!]), { root: root2, now: NOW }).signers).toHaveLength(2);
  });

  it('keeps the checks that passed on failure', () => {
    const err = expectCode(() => verifyRelease(signed(), { root, now: NOW, product: 'other' }), 'EMANIFEST');
    expect((err.details.checksPassed as string[]).length).toBe(5);
  });
});
