/**
 * The bundle format: one plain tar, entries in a fixed order, so an importer
 * can verify the signed envelope before it reads a single blob byte.
 *
 * ```
 * airlock-bundle.json          header: format, version, release, product, serial, blob count and bytes
 * root/1.json, root/2.json…    the trust root chain as the exporting node has it (0 or more, rising)
 * manifest.json                the signed envelope, byte for byte as the store verified it
 * blobs/sha256/<hex>           every blob the release needs, in manifest order (releaseBlobs)
 * ```
 *
 * Only regular files are allowed; anything else (links, devices, fifos,
 * directories, unsafe or unexpected names) is refused by the importer.
 */
import { AirlockError } from '../../manifests/errors.js';
import { LIMITS } from '../../manifests/types.js';
import { isDigest } from '../paths.js';

export const BUNDLE_FORMAT = 'airlock-bundle';
export const BUNDLE_VERSION = 1;

export const HEADER_NAME = 'airlock-bundle.json';
export const ENVELOPE_NAME = 'manifest.json';
export const ROOT_PREFIX = 'root/';
export const BLOB_PREFIX = 'blobs/sha256/';

/** the header is tiny; anything bigger is not ours */
export const HEADER_MAX_BYTES = 64 * 1024;
export const ROOT_MAX_BYTES = LIMITS.rootBytes;

export interface BundleHeader {
  format: typeof BUNDLE_FORMAT;
  version: number;
  product: string;
  release: string;
  serial: number;
  /** sha256 of the manifest's canonical payload */
  digest: string;
  blobs: { count: number; bytes: number };
  /** versions of the roots carried, in order */
  roots: number[];
  created: string;
}

export const rootEntryName = (version: number): string => `${ROOT_PREFIX}${version}.json`;
export const blobEntryName = (digest: string): string => `${BLOB_PREFIX}${digest}`;

/** `root/7.json` → 7, anything else → null */
export function rootVersionOf(name: string): number | null {
  const m = /^root\/([1-9][0-9]{0,8})\.json$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** `blobs/sha256/<hex>` → hex, anything else → null */
export function blobDigestOf(name: string): string | null {
  if (!name.startsWith(BLOB_PREFIX)) return null;
  const hex = name.slice(BLOB_PREFIX.length);
  return isDigest(hex) ? hex : null;
}

/** Strict parse of the header entry: EMANIFEST naming the field that is wrong. */
export function parseHeader(bytes: Buffer, where: string): BundleHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new AirlockError('EMANIFEST', `${where}: ${HEADER_NAME} is not JSON (${(e as Error).message})`, { bundle: where });
  }
  const bad = (field: string, expected: string): never => {
    throw new AirlockError('EMANIFEST', `${where}: ${HEADER_NAME} field "${field}" must be ${expected}`, { bundle: where, field });
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('(top level)', 'an object');
  const h = raw as Record<string, unknown>;
  if (h.format !== BUNDLE_FORMAT) bad('format', `"${BUNDLE_FORMAT}"`);
  if (h.version !== BUNDLE_VERSION) bad('version', `${BUNDLE_VERSION} (this airlock reads bundle format ${BUNDLE_VERSION} only)`);
  if (typeof h.product !== 'string' || h.product === '') bad('product', 'a non-empty string');
  if (typeof h.release !== 'string' || h.release === '') bad('release', 'a non-empty string');
  if (!Number.isSafeInteger(h.serial) || (h.serial as number) < 0) bad('serial', 'a non-negative integer');
  if (!isDigest(h.digest)) bad('digest', 'a sha256 hex digest');
  const blobs = h.blobs as Record<string, unknown> | undefined;
  if (typeof blobs !== 'object' || blobs === null) bad('blobs', 'an object {count, bytes}');
  if (!Number.isSafeInteger(blobs!.count) || (blobs!.count as number) < 0) bad('blobs.count', 'a non-negative integer');
  if (!Number.isSafeInteger(blobs!.bytes) || (blobs!.bytes as number) < 0) bad('blobs.bytes', 'a non-negative integer');
  if (!Array.isArray(h.roots) || h.roots.some((v) => !Number.isSafeInteger(v) || (v as number) < 1)) bad('roots', 'a list of root versions');
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    product: h.product as string,
    release: h.release as string,
    serial: h.serial as number,
    digest: h.digest as string,
    blobs: { count: blobs!.count as number, bytes: blobs!.bytes as number },
    roots: h.roots as number[],
    created: typeof h.created === 'string' ? h.created : '',
  };
}
