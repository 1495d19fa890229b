/**
 * The cache node's OpenPGP key for its apt indexes (InRelease, Release.gpg).
 *
 * OpenPGP.js (the `openpgp` package) does the format and the crypto; no gpg
 * home, agent or subprocess. The key is an ed25519 v4 key (algorithm 22,
 * "EdDSA legacy"), which Debian 12's gpgv verifies; RFC 9580's new ed25519
 * (algorithm 27, OpenPGP.js's default for `curve25519`) it does not, hence
 * `type: 'ecc', curve: 'ed25519Legacy'`.
 *
 * The key is either named in the config (`apt_signing_key: PATH`, an
 * unprotected armored or binary secret key, e.g. from `gpg
 * --export-secret-keys`) or made on first use into the cache dir (0600),
 * created exclusively so that several serving processes agree on one key.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as openpgp from 'openpgp';
import { AirlockError } from '../../manifests/errors.js';

export interface AptSigner {
  /** 40 uppercase hex characters (v4) */
  fingerprint: string;
  /** the public key, binary: what `signed-by=` wants in a `.gpg` keyring file */
  publicBinary: Buffer;
  /** the public key, ASCII armored */
  publicArmored: string;
  /** a clearsigned copy of `text` (InRelease) */
  clearsign(text: string): Promise<Buffer>;
  /** an armored detached signature over `data` (Release.gpg) */
  detach(data: Buffer): Promise<Buffer>;
}

const MAX_KEY_FILE = 1024 * 1024;

async function readSecretKey(bytes: Buffer, path: string): Promise<openpgp.PrivateKey> {
  let key: openpgp.PrivateKey;
  try {
    const text = bytes.toString('latin1');
    key = text.includes('-----BEGIN PGP PRIVATE KEY BLOCK-----')
      ? await openpgp.readPrivateKey({ armoredKey: text })
      : await openpgp.readPrivateKey({ binaryKey: new Uint8Array(bytes) });
  } catch (e) {
    throw new AirlockError('EUSAGE', `apt signing key ${path}: not an OpenPGP secret key (${(e as Error).message})`, { path });
  }
  if (!key.isDecrypted()) {
    throw new AirlockError('EUSAGE', `apt signing key ${path} is protected by a passphrase; export it without one (the server signs unattended)`, { path });
  }
  try {
    await key.getSigningKey();
  } catch (e) {
    throw new AirlockError('EUSAGE', `apt signing key ${path} cannot sign: ${(e as Error).message}`, { path });
  }
  return key;
}

export async function signerOf(key: openpgp.PrivateKey): Promise<AptSigner> {
  const pub = key.toPublic();
  return {
    fingerprint: key.getFingerprint().toUpperCase(),
    publicBinary: Buffer.from(pub.write()),
    publicArmored: pub.armor(),
    async clearsign(text) {
      const message = await openpgp.createCleartextMessage({ text });
      // OpenPGP.js writes the text's lines with CRLF (the signed, canonical form); apt's
      // parser wants them as given, and the signature does not depend on it
      return Buffer.from((await openpgp.sign({ message, signingKeys: key })).replace(/\r\n/g, '\n'), 'utf8');
    },
    async detach(data) {
      const message = await openpgp.createMessage({ binary: new Uint8Array(data) });
      return Buffer.from(await openpgp.sign({ message, signingKeys: key, detached: true }), 'utf8');
    },
  };
}

/** A new ed25519 signing key, armored, unprotected. */
export async function generateAptKey(name: string, date: Date): Promise<string> {
  const { privateKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'ed25519Legacy',
    userIDs: [{ name }],
    subkeys: [],
    date,
    format: 'armored',
  });
  return privateKey;
}

/**
 * The signer from `path`. With `create`, a missing file is made: written to a
 * temp file (0600) and hard-linked into place, so two processes starting at
 * once both end up with the one that landed first.
 */
export async function loadAptSigner(path: string, opts: { create: boolean; name?: string; now?: Date }): Promise<AptSigner> {
  let bytes: Buffer | null = null;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' || !opts.create) {
      throw new AirlockError('EUSAGE', `apt signing key ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { path });
    }
  }
  if (bytes === null) {
    const armored = await generateAptKey(opts.name ?? 'airlock cache node apt signing key', opts.now ?? new Date());
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeFile(tmp, armored, { mode: 0o600, flag: 'wx' });
      await link(tmp, path).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'EEXIST') throw e;
      });
    } catch (e) {
      throw new AirlockError('EINTERNAL', `cannot write the apt signing key ${path}: ${(e as Error).message} (or name one with apt_signing_key)`, { path });
    } finally {
      await rm(tmp, { force: true });
    }
    bytes = await readFile(path);
  }
  if (bytes.length > MAX_KEY_FILE) throw new AirlockError('EUSAGE', `apt signing key ${path} is larger than ${MAX_KEY_FILE} bytes`, { path });
  return signerOf(await readSecretKey(bytes, path));
}

/** The signer, loaded once on first use; a failure is retried on the next call. */
export function aptSignerSource(path: string, create: boolean): () => Promise<AptSigner> {
  let p: Promise<AptSigner> | null = null;
  return () => {
    if (!p) {
      p = loadAptSigner(path, { create });
      p.catch(() => {
        p = null;
      });
    }
    return p;
  };
}
