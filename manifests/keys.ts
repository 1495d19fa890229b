/**
 * ed25519 keys: key ids, raw bytes ↔ KeyObject, PEM text ↔ KeyObject, and
 * the sign/verify primitives. Takes strings and bytes, never paths: reading
 * key files is the caller's I/O.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import { AirlockError } from './errors.js';
import { sha256Hex } from './digest.js';

export const ED25519_PUBLIC_LENGTH = 32;
export const ED25519_SIGNATURE_LENGTH = 64;

/** The 32 raw bytes of an ed25519 public key (or of the public half of a private key). */
export function rawPublicKey(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== 'ed25519') {
    throw new AirlockError('EUSAGE', `expected an ed25519 key, got ${pub.asymmetricKeyType ?? pub.type}`);
  }
  const jwk = pub.export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url');
}

/** A KeyObject from the raw 32 bytes. */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== ED25519_PUBLIC_LENGTH) {
    throw new AirlockError('EMANIFEST', `ed25519 public key must be ${ED25519_PUBLIC_LENGTH} bytes, got ${raw.length}`);
  }
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/** Key id: lowercase hex sha256 of the raw 32-byte public key. */
export function keyIdOf(key: KeyObject | Uint8Array): string {
  return sha256Hex(key instanceof Uint8Array ? key : rawPublicKey(key));
}

const asText = (pem: string | Uint8Array): string => (typeof pem === 'string' ? pem : Buffer.from(pem).toString('utf8'));

/** An ed25519 private key from PKCS#8 PEM text. `where` names the source (a file) in messages. */
export function loadPrivateKeyPem(pem: string | Uint8Array, where = 'private key'): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: asText(pem), format: 'pem' });
  } catch {
    throw new AirlockError('EUSAGE', `${where}: not a PEM private key (expected PKCS#8 "BEGIN PRIVATE KEY")`, { where });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AirlockError('EUSAGE', `${where}: expected an ed25519 key, got ${key.asymmetricKeyType}`, { where });
  }
  return key;
}

/**
 * An ed25519 public key from SPKI PEM text. A private key PEM is accepted
 * too (its public half is taken) so a publisher can name either file.
 */
export function loadPublicKeyPem(pem: string | Uint8Array, where = 'public key'): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: asText(pem), format: 'pem' });
  } catch {
    throw new AirlockError('EUSAGE', `${where}: not a PEM public key (expected SPKI "BEGIN PUBLIC KEY")`, { where });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new AirlockError('EUSAGE', `${where}: expected an ed25519 key, got ${key.asymmetricKeyType}`, { where });
  }
  return key;
}

export interface GeneratedKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** PKCS#8 PEM */
  privatePem: string;
  /** SPKI PEM */
  publicPem: string;
  keyid: string;
}

export function generateKey(): GeneratedKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    publicKey,
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    keyid: keyIdOf(publicKey),
  };
}

export function signBytes(privateKey: KeyObject, data: Uint8Array): Buffer {
  return cryptoSign(null, data, privateKey);
}

/** True only for a valid ed25519 signature; never throws for malformed input. */
export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_LENGTH) return false;
  try {
    return cryptoVerify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}
