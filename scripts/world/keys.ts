/**
 * Test keys and a trust root, made the way docs/manifest.md "The trust
 * root" says (ed25519, PKCS#8/SPKI PEM, key id = sha256 of the raw
 * 32-byte public key), signed through the manifests facade.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalize, signEnvelope } from '../../manifests/index.js';
import { RELEASE_PAYLOAD_TYPE, ROOT_PAYLOAD_TYPE, type ReleaseManifest, type RootPayload } from '../../manifests/types.js';
import { rfc3339 } from './release.js';

export interface TestKey {
  keyid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** base64 of the raw 32 bytes */
  publicRaw: string;
  keyPath: string;
  pubPath: string;
}

export interface Trust {
  dir: string;
  root: TestKey;
  release: TestKey;
  rootPayload: RootPayload;
  /** the signed root.json (envelope bytes) */
  rootJson: Buffer;
  rootJsonPath: string;
}

export function rawPublic(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  if (!jwk.x) throw new Error('not an ed25519 public key');
  return Buffer.from(jwk.x, 'base64url');
}

export function keyId(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublic(publicKey)).digest('hex');
}

/** NAME.key (PKCS#8 PEM, 0600) and NAME.pub (SPKI PEM) in dir. */
export function makeKey(dir: string, name: string): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const keyPath = join(dir, `${name}.key`);
  const pubPath = join(dir, `${name}.pub`);
  writeFileSync(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  writeFileSync(pubPath, publicKey.export({ format: 'pem', type: 'spki' }));
  return { keyid: keyId(publicKey), privateKey, publicKey, publicRaw: rawPublic(publicKey).toString('base64'), keyPath, pubPath };
}

/** A root key, a release key and root.json (version 1, threshold 1 each) signed by the root key. */
export function makeTrust(dir: string, opts: { expires?: Date; version?: number } = {}): Trust {
  mkdirSync(dir, { recursive: true });
  const root = makeKey(dir, 'root');
  const release = makeKey(dir, 'release');
  const rootPayload: RootPayload = {
    type: 'airlock-root', spec: 1, version: opts.version ?? 1,
    expires: rfc3339(opts.expires ?? new Date(Date.now() + 365 * 86_400_000)),
    keys: {
      [root.keyid]: { keytype: 'ed25519', public: root.publicRaw },
      [release.keyid]: { keytype: 'ed25519', public: release.publicRaw },
    },
    roles: { root: { keyids: [root.keyid], threshold: 1 }, release: { keyids: [release.keyid], threshold: 1 } },
  };
  const rootJson = signEnvelope(ROOT_PAYLOAD_TYPE, Buffer.from(canonicalize(rootPayload)), [root.privateKey]);
  const rootJsonPath = join(dir, 'root.json');
  writeFileSync(rootJsonPath, rootJson);
  return { dir, root, release, rootPayload, rootJson, rootJsonPath };
}

/** The signed envelope (JSON bytes) of a release payload, by the trust's release key (or the keys given). */
export function signRelease(payload: ReleaseManifest, trust: Pick<Trust, 'release'>, keys?: KeyObject[]): Buffer {
  return signEnvelope(RELEASE_PAYLOAD_TYPE, Buffer.from(canonicalize(payload)), keys ?? [trust.release.privateKey]);
}
