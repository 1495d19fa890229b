import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import {
  generateKey,
  keyIdOf,
  loadPrivateKeyPem,
  loadPublicKeyPem,
  publicKeyFromRaw,
  rawPublicKey,
  signBytes,
  verifyBytes,
} from '../../manifests/keys.js';
import { expectCode } from './fixtures.js';

describe('keys', () => {
  const k = generateKey();

  it('key id is the lowercase hex sha256 of the raw 32-byte public key', () => {
    const raw = rawPublicKey(k.publicKey);
    expect(raw.length).toBe(32);
    expect(k.keyid).toBe(createHash('sha256').update(raw).digest('hex'));
    expect(keyIdOf(raw)).toBe(k.keyid);
    expect(keyIdOf(k.privateKey)).toBe(k.keyid);
  });

  it('raw bytes ↔ KeyObject round-trips', () => {
    const back = publicKeyFromRaw(rawPublicKey(k.publicKey));
    expect(keyIdOf(back)).toBe(k.keyid);
    expectCode(() => publicKeyFromRaw(Buffer.alloc(31)), 'EMANIFEST');
  });

  it('PEM text and bytes load; the public half of a private PEM is accepted as a public key', () => {
    expect(keyIdOf(loadPrivateKeyPem(k.privatePem))).toBe(k.keyid);
    expect(keyIdOf(loadPrivateKeyPem(Buffer.from(k.privatePem)))).toBe(k.keyid);
    expect(keyIdOf(loadPublicKeyPem(k.publicPem))).toBe(k.keyid);
    expect(keyIdOf(loadPublicKeyPem(k.privatePem))).toBe(k.keyid);
    expect(k.privatePem).toMatch(/BEGIN PRIVATE KEY/);
    expect(k.publicPem).toMatch(/BEGIN PUBLIC KEY/);
  });

  it('refuses garbage and a public PEM where a private key is needed', () => {
    expectCode(() => loadPrivateKeyPem('nope', 'a.key'), 'EUSAGE', /a\.key/);
    expectCode(() => loadPrivateKeyPem(k.publicPem, 'a.pub'), 'EUSAGE');
    expectCode(() => loadPublicKeyPem('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'), 'EUSAGE');
  });

  it('sign/verify, and verify never throws on malformed signatures', () => {
    const sig = signBytes(k.privateKey, Buffer.from('m'));
    expect(verifyBytes(k.publicKey, Buffer.from('m'), sig)).toBe(true);
    expect(verifyBytes(k.publicKey, Buffer.from('n'), sig)).toBe(false);
    expect(verifyBytes(k.publicKey, Buffer.from('m'), sig.subarray(1))).toBe(false);
    expect(verifyBytes(k.publicKey, Buffer.from('m'), Buffer.alloc(64))).toBe(false);
  });
});
