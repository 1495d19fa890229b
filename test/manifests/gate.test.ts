import { describe, expect, it } from 'vitest';
import { assertNoRollback } from '../../manifests/verify.js';
import { MAX_OFFERED_ROOTS, openTrustGate, passTrustGate, type GateInput } from '../../manifests/gate.js';
import { canon, expectCode, HEX, keys, manifest, NOW, rootPayload, signed, signRoot } from './fixtures.js';
import { sha256Hex } from '../../manifests/digest.js';

const [k0, k1, k2, k3, k4] = keys as [typeof keys[0] & object, typeof keys[0] & object, typeof keys[0] & object, typeof keys[0] & object, typeof keys[0] & object];

// v1: root k0, release k1.  v2: root k2, release k3 (signed by k0 and k2).  v3: root k4, release k3.
const v1 = signRoot(rootPayload({ root: [k0], release: [k1] }), [k0]);
const v2payload = rootPayload({ version: 2, root: [k2], release: [k3] });
const v2 = signRoot(v2payload, [k0, k2]);
const v3 = signRoot(rootPayload({ version: 3, root: [k4], release: [k3] }), [k2, k4]);
const expiredV1 = signRoot(rootPayload({ root: [k0], release: [k1], expires: '2027-01-01T00:00:00Z' }), [k0]);
const expiredV1toV2 = signRoot(v2payload, [k0, k2]);

const byV1 = signed(); // manifest serial 17, release key k1
const byV3key = signed(manifest(), [k3]);
const clock = { now: NOW };
const gate = (over: Partial<GateInput> = {}) => () => passTrustGate({ envelope: byV1, localRoot: v1, clock, ...over });

describe('passTrustGate', () => {
  it('verifies against the local root and returns what the caller persists', () => {
    const r = gate()();
    expect(r.manifest.release).toBe('3.6.2');
    expect(r.root.version).toBe(1);
    expect(r.localRootVersion).toBe(1);
    expect(r.warnings).toEqual([]);
    expect(r.accepted).toEqual({ product: 'stackato', serial: 17, digest: sha256Hex(canon(manifest())) });
  });

  it('follows offered rotations, skipping versions already trusted; the result says the root moved', () => {
    const r = passTrustGate({ envelope: byV3key, localRoot: v1, offeredRoots: [v1, v2, v3], clock });
    expect(r.root.version).toBe(3);
    expect(r.localRootVersion).toBe(1);
    expect(r.root.bytes.equals(v3)).toBe(true);
    // the old release key no longer signs for the rotated root
    expectCode(gate({ offeredRoots: [v2] }), 'ESIGNATURE');
    // an older root offered to a newer local root is skipped
    expect(passTrustGate({ envelope: byV3key, localRoot: v2, offeredRoots: [{ bytes: v1, what: '--trust old.json' }], clock }).root.version).toBe(2);
  });

  it('refuses a root of the trusted version with other bytes (a fork), naming where it came from', () => {
    const fork = signRoot({ ...rootPayload({ root: [k0], release: [k1, k2] }) }, [k0]);
    expectCode(gate({ offeredRoots: [{ bytes: fork, what: '--trust other.json' }] }), 'ESIGNATURE', /--trust other\.json: root version 1 differs/);
  });

  it('refuses a gap, a rotation not signed by the trusted root, and a bad local root', () => {
    expectCode(gate({ offeredRoots: [v3] }), 'ESIGNATURE', /expected exactly 2/);
    expectCode(gate({ offeredRoots: [signRoot(v2payload, [k2])] }), 'ESIGNATURE', /trusted version 1/);
    expectCode(gate({ localRoot: signRoot(rootPayload({ root: [k0], release: [k1] }), [k1]) }), 'ESIGNATURE');
    expectCode(gate({ localRoot: Buffer.from('{"not":"a root"}') }), 'EMANIFEST');
  });

  it('an expired local root passes only with --accept-expired-until, with a warning', () => {
    expectCode(gate({ localRoot: expiredV1 }), 'EEXPIRED', /trust root version 1 expired/);
    const until = new Date('2027-02-01T00:00:00Z');
    const r = gate({ localRoot: expiredV1, clock: { now: NOW, acceptExpiredUntil: until } })();
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/trust root version 1 expired at 2027-01-01.*--accept-expired-until/);
    expectCode(gate({ localRoot: expiredV1, clock: { now: NOW, acceptExpiredUntil: new Date('2027-01-10T00:00:00Z') } }), 'EEXPIRED', /already past/);
  });

  it('an expired local root rotated to a fresh one needs no extension (only the final root must be fresh)', () => {
    const r = passTrustGate({ envelope: byV3key, localRoot: expiredV1, offeredRoots: [expiredV1toV2], clock });
    expect(r.root.version).toBe(2);
    expect(r.warnings).toEqual([]);
  });

  it('an expired manifest passes only with the extension, and says so', () => {
    const old = signed(manifest({ expires: '2027-01-01T00:00:00Z' }));
    expectCode(gate({ envelope: old }), 'EEXPIRED', /manifest stackato 3\.6\.2 expired/);
    const r = gate({ envelope: old, clock: { now: NOW, acceptExpiredUntil: new Date('2027-02-01T00:00:00Z') } })();
    expect(r.expiredAccepted).toBe(true);
    expect(r.warnings).toEqual([expect.stringMatching(/manifest stackato 3\.6\.2 expired/)]);
  });

  it('applies the serial book and the product', () => {
    const digest = sha256Hex(canon(manifest()));
    expectCode(gate({ accepted: { stackato: { product: 'stackato', serial: 18, digest: HEX('0') } } }), 'EROLLBACK', /lower than the accepted serial 18/);
    expectCode(gate({ accepted: { stackato: { product: 'stackato', serial: 17, digest: HEX('0') } } }), 'EROLLBACK', /equivocation/);
    expect(gate({ accepted: { stackato: { product: 'stackato', serial: 17, digest } } })().manifest.serial).toBe(17);
    expectCode(gate({ product: 'other' }), 'EMANIFEST', /expected "other"/);
  });

  it(`refuses more than ${MAX_OFFERED_ROOTS} offered roots before checking any`, () => {
    const junk = Array.from({ length: MAX_OFFERED_ROOTS + 1 }, () => Buffer.from('junk'));
    expectCode(gate({ offeredRoots: junk }), 'EMANIFEST', /more than 256/);
  });
});

describe('openTrustGate (a chain that streams in)', () => {
  it('takes roots one at a time and admits like passTrustGate', () => {
    const g = openTrustGate(v1, clock);
    expect(g.root.version).toBe(1);
    g.offerRoot(v2, 'root/2.json');
    expect(g.root.version).toBe(2);
    g.offerRoot(v3, 'root/3.json');
    expect(g.admit(byV3key).root.version).toBe(3);
  });

  it('refuses at the first bad root, naming it, and counts what it was offered', () => {
    const g = openTrustGate(v1, clock);
    expectCode(() => g.offerRoot(Buffer.from('x'.repeat(100)), 'bundle.tar: root/2.json'), 'EMANIFEST', /bundle\.tar: root\/2\.json/);
    const h = openTrustGate(v1, clock);
    for (let i = 0; i < MAX_OFFERED_ROOTS; i++) h.offerRoot(v1);
    expectCode(() => h.offerRoot(v1), 'EMANIFEST', /more than 256 roots/);
  });
});

describe('assertNoRollback', () => {
  const at = (serial: number, digest = HEX('a')) => ({ product: 'p', serial, digest });
  it.each([
    ['nothing accepted yet', undefined, at(1), null],
    ['a higher serial', at(1), at(2, HEX('b')), null],
    ['the same serial and digest', at(2), at(2), null],
    ['a lower serial', at(2), at(1), /lower than the accepted serial 2/],
    ['the same serial, another digest', at(2), at(2, HEX('b')), /equivocation/],
  ])('%s', (_name, before, next, refused) => {
    if (refused) expectCode(() => assertNoRollback(before, next), 'EROLLBACK', refused);
    else expect(() => assertNoRollback(before, next)).not.toThrow();
  });
});
