/**
 * `airlock-node apt-source`: points this node's apt at a product repository
 * of the cache (`/apt/PRODUCT SUITE main`, signed by the cache's own key).
 * Writes ROOT/etc/apt/keyrings/airlock.gpg (the key, fetched from the cache)
 * and ROOT/etc/apt/sources.list.d/airlock.list (or airlock.sources, deb822),
 * both through the install root's fence, so nothing lands outside --root.
 *
 * The key comes from the cache, which is an untrusted mirror: whoever
 * answers in its name could hand over their own key. `--fingerprint FPR`
 * pins it (a mismatch writes nothing); without it the fingerprint is printed
 * with a warning to check it against the cache node's.
 */
import { join, resolve } from 'node:path';
import * as openpgp from 'openpgp';
import { cachePath } from '../common/cache-api.js';
import { AirlockError } from '../manifests/errors.js';
import { createHttpClient } from '../storage/fetch/http.js';
import { fetchWhole } from '../storage/fetch/whole.js';
import { Fence, writeFileAt } from './install/fence.js';

/** Where the node keeps the key; the sources file names it so (the path on the node, whatever --root is). */
export const APT_KEYRING = '/etc/apt/keyrings/airlock.gpg';
const MAX_KEY_BYTES = 64 * 1024;

export interface AptSourceOptions {
  /** base URL of the cache, e.g. http://cache:7070 */
  cache: string;
  product: string;
  /** a release name or `current` */
  suite: string;
  /** install root; `/` is the real system */
  root: string;
  /** the fingerprint the key must have (spaces and a 0x prefix allowed), or null */
  fingerprint: string | null;
  /** `list` (one-line sources.list.d/airlock.list) or `deb822` (sources.list.d/airlock.sources) */
  format: 'list' | 'deb822';
  answerTimeoutMs?: number;
}

export interface AptSourceResult {
  fingerprint: string;
  pinned: boolean;
  keyring: string;
  source: string;
  /** the sources entry as written */
  entry: string;
}

/** 40 uppercase hex characters, or EUSAGE. */
export function normalizeFingerprint(text: string): string {
  const f = text.replace(/\s+/g, '').replace(/^0x/i, '').toUpperCase();
  if (!/^[0-9A-F]{40}$/.test(f)) throw new AirlockError('EUSAGE', `--fingerprint must be 40 hex characters (an OpenPGP v4 fingerprint), got "${text}"`);
  return f;
}

/** The fingerprint of the one public key in `bytes` (binary), or EUPSTREAM naming `url`. */
export async function keyFingerprint(bytes: Buffer, url: string): Promise<string> {
  let keys: openpgp.Key[];
  try {
    keys = await openpgp.readKeys({ binaryKeys: new Uint8Array(bytes) });
  } catch (e) {
    throw new AirlockError('EUPSTREAM', `${url}: not an OpenPGP public key (${(e as Error).message})`, { url });
  }
  if (keys.length !== 1 || keys[0]!.isPrivate()) {
    throw new AirlockError('EUPSTREAM', `${url}: expected one OpenPGP public key, got ${keys.length} key(s)${keys.some((k) => k.isPrivate()) ? ' with secret material' : ''}`, { url });
  }
  return keys[0]!.getFingerprint().toUpperCase();
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]*$/;

export function aptSourceEntry(opts: Pick<AptSourceOptions, 'cache' | 'product' | 'suite' | 'format'>): string {
  const uri = `${opts.cache.replace(/\/+$/, '')}${cachePath.aptProduct(opts.product)}`;
  if (opts.format === 'deb822') {
    return ['Types: deb', `URIs: ${uri}`, `Suites: ${opts.suite}`, 'Components: main', `Signed-By: ${APT_KEYRING}`, ''].join('\n');
  }
  return `deb [signed-by=${APT_KEYRING}] ${uri} ${opts.suite} main\n`;
}

export async function writeAptSource(opts: AptSourceOptions): Promise<AptSourceResult> {
  let base: URL;
  try {
    base = new URL(opts.cache);
  } catch {
    throw new AirlockError('EUSAGE', `--cache must be the cache's base URL such as http://cache:7070, got "${opts.cache}"`);
  }
  if ((base.protocol !== 'http:' && base.protocol !== 'https:') || opts.cache.includes(',')) {
    throw new AirlockError('EUSAGE', `--cache must be one http(s) URL such as http://cache:7070, got "${opts.cache}"`);
  }
  if (!NAME.test(opts.product)) throw new AirlockError('EUSAGE', `--product must be a product name, got "${opts.product}"`);
  if (!NAME.test(opts.suite)) throw new AirlockError('EUSAGE', `--suite must be a release name or "current", got "${opts.suite}"`);
  const want = opts.fingerprint === null ? null : normalizeFingerprint(opts.fingerprint);
  const cache = opts.cache.replace(/\/+$/, '');

  const url = cache + cachePath.aptKey();
  const http = createHttpClient({ env: {}, proxy: null, stallTimeoutMs: 30_000, connectTimeoutMs: 10_000 });
  let key: Buffer;
  try {
    key = await fetchWhole(http, url, { cap: MAX_KEY_BYTES, deadlineMs: opts.answerTimeoutMs ?? 60_000, what: 'cache' });
  } finally {
    http.close();
  }
  const fingerprint = await keyFingerprint(key, url);
  if (want && want !== fingerprint) {
    throw new AirlockError('ESIGNATURE', `the cache's apt key ${url} has fingerprint ${fingerprint}, not the pinned ${want}; nothing written`, {
      url,
      fingerprint,
      expected: want,
    });
  }

  const entry = aptSourceEntry({ ...opts, cache });
  const root = resolve(opts.root);
  const fence = await Fence.of(root).catch((e: NodeJS.ErrnoException) => {
    throw new AirlockError('EUSAGE', `--root ${root}: ${e.code === 'ENOENT' ? 'no such folder' : e.message}`, { root });
  });
  const keyring = join(root, APT_KEYRING);
  const source = join(root, 'etc/apt/sources.list.d', opts.format === 'deb822' ? 'airlock.sources' : 'airlock.list');
  const where = 'apt-source';
  await writeFileAt((await fence.place(keyring, where)).real, key, 0o644);
  await writeFileAt((await fence.place(source, where)).real, entry, 0o644);
  return { fingerprint, pinned: want !== null, keyring, source, entry };
}
