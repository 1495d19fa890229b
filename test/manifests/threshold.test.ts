/**
 * The cost of checking signatures is bounded by the role's keys, not by what
 * an envelope carries: a hostile cache or bundle can serve any number of
 * bogus signatures without holding a key.
 */
import { randomBytes, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseEnvelope, signEnvelope, type DecodedEnvelope } from '../../manifests/dsse.js';
import { rawPublicKey, verifyBytes } from '../../manifests/keys.js';
import { verifyThreshold } from '../../manifests/threshold.js';
import { loadTrustedRoot } from '../../manifests/root.js';
import { LIMITS, RELEASE_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE, type RoleSpec, type RootKey } from '../../manifests/types.js';
import { canon, editEnvelope, expectCode, keys, rootPayload } from './fixtures.js';

const [, k1, k2, k3] = keys as [(typeof keys)[number], (typeof keys)[number], (typeof keys)[number], (typeof keys)[number]];

/** A role and its key table, from a root payload. */
const release = (ks: typeof keys, threshold = 1): { role: RoleSpec; keys: Record<string, RootKey> } => {
  const p = rootPayload({ root: [keys[0]!], release: ks, releaseThreshold: threshold });
  return { role: p.roles.release, keys: p.keys };
};

/** verifyThreshold with a verifier that counts the ed25519 checks it makes. */
function counted(decoded: DecodedEnvelope, r: ReturnType<typeof release>): { checks: number; run: () => string[] } {
  const state = { checks: 0, run: () => [] as string[] };
  state.run = () =>
    verifyThreshold(decoded, r.role, r.keys, 'manifest', {
      verify: (key: KeyObject, message: Uint8Array, sig: Uint8Array) => {
        state.checks++;
        return verifyBytes(key, message, sig);
      },
    });
  return state;
}

/**
 * A forged signature an attacker makes without a key: R a valid curve point
 * (any public key) and S below the group order, so OpenSSL's cheap checks
 * pass and every try hashes the whole message.
 */
const R = rawPublicKey(keys[5]!.publicKey);
const forged = (): string => {
  const s = randomBytes(32);
  s[31] = s[31]! & 0x0f;
  return Buffer.concat([R, s]).toString('base64');
};
const bogus = (keyid?: string): Record<string, unknown> => ({ ...(keyid === undefined ? {} : { keyid }), sig: forged() });
const envelope = (payload: Buffer, signers: KeyObject[]): Buffer => signEnvelope(RELEASE_PAYLOAD_TYPE, payload, signers);
const small = Buffer.from('{"a":1}');

describe('verifyThreshold: work is bounded by the role keys', () => {
  it('256 bogus signatures hinting at the release key cost one check', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => {
      e.signatures = Array.from({ length: 256 }, () => bogus(k1.keyid));
    });
    const c = counted(parseEnvelope(env), release([k1]));
    expectCode(c.run, 'ESIGNATURE');
    expect(c.checks).toBe(1);
  });

  it('256 bogus signatures with random key ids cost no check at all', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => {
      e.signatures = Array.from({ length: 256 }, () => bogus(randomBytes(32).toString('hex')));
    });
    const c = counted(parseEnvelope(env), release([k1, k2]));
    expectCode(c.run, 'ESIGNATURE', /no key of this role/);
    expect(c.checks).toBe(0);
  });

  it('256 bogus signatures without key ids cost one check per role key', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => {
      e.signatures = Array.from({ length: 256 }, () => bogus());
    });
    const c = counted(parseEnvelope(env), release([k1, k2, k3]));
    expectCode(c.run, 'ESIGNATURE');
    expect(c.checks).toBe(3);
  });

  it('a mix of all three costs at most one check per role key', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => {
      e.signatures = Array.from({ length: 255 }, (_, i) => (i % 3 === 0 ? bogus(k1.keyid) : i % 3 === 1 ? bogus(k2.keyid) : bogus()));
    });
    const c = counted(parseEnvelope(env), release([k1, k2, k3], 2));
    expectCode(c.run, 'ESIGNATURE');
    expect(c.checks).toBeLessThanOrEqual(3);
  });

  it('a threshold that cannot be met is refused before any check', () => {
    // threshold 2, but only one signature names a role key: nothing is verified
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => e.signatures.push(bogus(k3.keyid)));
    const c = counted(parseEnvelope(env), release([k1, k2], 2));
    expectCode(c.run, 'ESIGNATURE', /at most 1 of the required 2 .*refused without checking/);
    expect(c.checks).toBe(0);
  });

  it('stops as soon as the threshold is met', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => e.signatures.push(bogus(k2.keyid), bogus(), bogus()));
    const c = counted(parseEnvelope(env), release([k1, k2, k3]));
    expect(c.run()).toEqual([k1.keyid]);
    expect(c.checks).toBe(1);
  });

  it('short or long signatures cost nothing and do not use up their key', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => e.signatures.unshift({ keyid: k1.keyid, sig: 'AAAA' }));
    const c = counted(parseEnvelope(env), release([k1]));
    expect(c.run()).toEqual([k1.keyid]);
    expect(c.checks).toBe(1);
  });

  it('over the signature cap is refused before any check', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey]), (e) => {
      for (let i = 0; i < LIMITS.signatures; i++) e.signatures.push(bogus(k1.keyid));
    });
    const c = counted(parseEnvelope(env), release([k1]));
    expectCode(c.run, 'EMANIFEST', /over the cap/);
    expect(c.checks).toBe(0);
  });
});

describe('verifyThreshold: honest envelopes still verify', () => {
  it('threshold 2 of 3, hinted, in any order', () => {
    const env = envelope(small, [k3.privateKey, k1.privateKey]);
    expect(verifyThreshold(parseEnvelope(env), release([k1, k2, k3], 2).role, release([k1, k2, k3]).keys, 'm').sort()).toEqual(
      [k1.keyid, k3.keyid].sort(),
    );
  });

  it('a key listed under an alias id is found by its canonical id too', () => {
    const r = release([k1]);
    const alias = 'a'.repeat(64);
    r.keys[alias] = r.keys[k1.keyid]!;
    delete r.keys[k1.keyid];
    r.role.keyids = [alias];
    expect(verifyThreshold(parseEnvelope(envelope(small, [k1.privateKey])), r.role, r.keys, 'm')).toEqual([k1.keyid]);
  });

  it('signatures without key ids, in role order, meet threshold 2', () => {
    const env = editEnvelope(envelope(small, [k1.privateKey, k2.privateKey]), (e) => e.signatures.forEach((s) => delete s.keyid));
    const r = release([k1, k2], 2);
    expect(verifyThreshold(parseEnvelope(env), r.role, r.keys, 'm')).toEqual([k1.keyid, k2.keyid]);
  });

  it('a hinted signature and one without a hint meet threshold 2 whatever their order', () => {
    const env = editEnvelope(envelope(small, [k2.privateKey, k1.privateKey]), (e) => delete e.signatures[0]!.keyid);
    const r = release([k1, k2], 2);
    expect(verifyThreshold(parseEnvelope(env), r.role, r.keys, 'm').sort()).toEqual([k1.keyid, k2.keyid].sort());
  });
});

describe('verifyThreshold: a near-cap hostile envelope costs about one valid check', () => {
  // the biggest payload whose envelope (base64, 4/3) still fits under the cap with 256 signatures
  const payloadBytes = Math.floor(((LIMITS.envelopeBytes - 256 * 200 - 1024) * 3) / 4);
  const payload = randomBytes(payloadBytes);
  const r = release([k1]);

  const minTime = (fn: () => void, runs = 3): number => {
    let best = Infinity;
    for (let i = 0; i < runs; i++) {
      const t0 = process.hrtime.bigint();
      fn();
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return best;
  };

  it('256 bogus signatures (release key id and random ids): ≤ 1 check, ≤ 2× the time of one valid check', () => {
    const good = envelope(payload, [k1.privateKey]);
    const hostile = editEnvelope(good, (e) => {
      e.signatures = Array.from({ length: 256 }, (_, i) => bogus(i % 2 === 0 ? k1.keyid : randomBytes(32).toString('hex')));
    });
    expect(hostile.length).toBeLessThanOrEqual(LIMITS.envelopeBytes);
    const goodDecoded = parseEnvelope(good, 'manifest', LIMITS.envelopeBytes);
    const hostileDecoded = parseEnvelope(hostile, 'manifest', LIMITS.envelopeBytes);

    const valid = minTime(() => verifyThreshold(goodDecoded, r.role, r.keys, 'manifest'));
    const refused = minTime(() => expectCode(() => verifyThreshold(hostileDecoded, r.role, r.keys, 'manifest'), 'ESIGNATURE'));
    // generous slack for a loaded machine; every key tried against every signature was ~256× the valid check
    expect(refused).toBeLessThanOrEqual(2 * valid + 250);

    const c = counted(hostileDecoded, r);
    expectCode(c.run, 'ESIGNATURE');
    expect(c.checks).toBe(1);
  }, 120_000);
});

describe('verifyThreshold on roots', () => {
  it('a rotation envelope costs one check per key of the role it is checked against', () => {
    // signed by the old root key and two new ones: the old role sees the new keys' signatures as strangers
    const p = rootPayload({ version: 2, root: [k2, k3], rootThreshold: 2, release: [k1] });
    const env = signEnvelope(ROOT_PAYLOAD_TYPE, canon(p), [k1.privateKey, k2.privateKey, k3.privateKey]);
    const old = release([k1]);
    const c = counted(parseEnvelope(env), old);
    expect(c.run()).toEqual([k1.keyid]);
    expect(c.checks).toBe(1);
    const own = counted(parseEnvelope(env), { role: p.roles.root, keys: p.keys });
    expect(own.run().sort()).toEqual([k2.keyid, k3.keyid].sort());
    expect(own.checks).toBe(2);
  });

  it('a root.json with 256 forged signatures on its root key is refused after one check', () => {
    const p = rootPayload({ root: [k1], release: [k2] });
    const env = editEnvelope(signEnvelope(ROOT_PAYLOAD_TYPE, canon(p), [k1.privateKey]), (e) => {
      e.signatures = Array.from({ length: 256 }, () => bogus(k1.keyid));
    });
    expectCode(() => loadTrustedRoot(env, new Date('2027-01-15T12:00:00Z')), 'ESIGNATURE', /0 of the required 1/);
    const c = counted(parseEnvelope(env), { role: p.roles.root, keys: p.keys });
    expectCode(c.run, 'ESIGNATURE');
    expect(c.checks).toBe(1);
  });
});
