/**
 * The whole on-disk layout of a cache directory, in one place (as in
 * distribution's registry/storage/paths.go). Nothing else in airlock builds
 * a path inside `cache_dir` by hand.
 *
 * ```
 * cache_dir/
 *   blobs/sha256/ab/abcdef…        immutable, complete, verified, mode 0444
 *   partial/<hex>                  resumable ingest of one blob (never served)
 *   partial/<hex>.<rand>.tmp       a backend writer's temp file (removed in finally)
 *   quarantine/<hex>.<timestamp>   blobs that failed `airlock verify`
 *   index/level/                   level database: releases, artifacts, blobs, serials
 *   index/envelopes/<release>.json each verified envelope, byte for byte (source of truth)
 *   index/outlines/<release>.txt   what `status` needs of a release (a cache of the envelope)
 *   index/accepted.json            highest accepted serial per product (mirror of level)
 *   index/shared                   with blobs in a bucket: index/ follows the bucket's records
 *   index/envelope-md5.json        with blobs in a bucket: each envelope's MD5 by mtime and size (a cache)
 *   lock                           proper-lockfile: one writer process at a time
 *   lock.info                      who holds the lock: pid, host, command, since
 * ```
 *
 * `index/` holds the release records that storage/releases/ reads and writes;
 * its on-disk name stays `index/` so existing caches keep working.
 *
 * With blobs in a bucket (storage/backend/s3.ts), the release records are
 * kept there too, relative to the configured prefix, and `index/` becomes a
 * cache of them (storage/releases/sync.ts):
 *
 * ```
 * PREFIX/blobs/sha256/ab/abcdef…      the blobs
 * PREFIX/quarantine/<hex>.<timestamp> blobs that failed `airlock verify`
 * PREFIX/releases/<release>.json      each verified envelope, byte for byte (the truth)
 * PREFIX/accepted/<product>.json      highest accepted serial of a product: {product, serial, digest}
 * ```
 *
 * Digests and release names are validated here, before they become paths.
 */
import { join } from 'node:path';
import { AirlockError } from '../manifests/errors.js';

export const LAYOUT_VERSION = 1;

const HEX64 = /^[0-9a-f]{64}$/;
/** release names become file names: no separators, no leading dot */
const RELEASE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/;

export function isDigest(digest: unknown): digest is string {
  return typeof digest === 'string' && HEX64.test(digest);
}

/** EPATH unless 64 lowercase hex characters. */
export function assertDigest(digest: unknown, where = 'digest'): asserts digest is string {
  if (!isDigest(digest)) {
    throw new AirlockError('EPATH', `${where}: "${String(digest).slice(0, 80)}" is not a sha256 digest (64 lowercase hex characters)`, {
      digest,
    });
  }
}

export function assertReleaseName(release: unknown): asserts release is string {
  if (typeof release !== 'string' || !RELEASE_NAME.test(release) || release.includes('..')) {
    throw new AirlockError('EPATH', `release name "${String(release).slice(0, 80)}" cannot be stored (letters, digits, . _ + ~ -)`, {
      release,
    });
  }
}

export const blobsRoot = (root: string): string => join(root, 'blobs', 'sha256');

export function blobPath(root: string, digest: string): string {
  assertDigest(digest);
  return join(root, 'blobs', 'sha256', digest.slice(0, 2), digest);
}

/** The folder every blob lives under (cache_dir/blobs) and a blob's '/'-separated path below it: what a front end's alias maps. */
export const blobsDir = (root: string): string => join(root, 'blobs');

export function blobRelativePath(digest: string): string {
  assertDigest(digest);
  return `sha256/${digest.slice(0, 2)}/${digest}`;
}

export const partialDir = (root: string): string => join(root, 'partial');

export function partialPath(root: string, digest: string): string {
  assertDigest(digest);
  return join(root, 'partial', digest);
}

export function tempPath(root: string, digest: string, unique: string): string {
  assertDigest(digest);
  return join(root, 'partial', `${digest}.${unique}.tmp`);
}

export const quarantineDir = (root: string): string => join(root, 'quarantine');

export function quarantinePath(root: string, digest: string, at: Date = new Date()): string {
  assertDigest(digest);
  return join(root, 'quarantine', `${digest}.${at.toISOString().replace(/[:.]/g, '-')}`);
}

export const indexDir = (root: string): string => join(root, 'index');
export const levelDir = (root: string): string => join(root, 'index', 'level');
export const envelopesDir = (root: string): string => join(root, 'index', 'envelopes');
export const acceptedPath = (root: string): string => join(root, 'index', 'accepted.json');

export function envelopePath(root: string, release: string): string {
  assertReleaseName(release);
  return join(root, 'index', 'envelopes', `${release}.json`);
}

/** What `status` needs of a release, in lines (releases/outline.ts); a cache of the envelope. */
export function outlinePath(root: string, release: string): string {
  assertReleaseName(release);
  return join(root, 'index', 'outlines', `${release}.txt`);
}

/** Folders and keys of the release records on a RecordShelf (a bucket), relative to its prefix. */
export const RECORDS_FOLDER = 'releases';
export const ACCEPTED_FOLDER = 'accepted';

export function releaseRecordKey(release: string): string {
  assertReleaseName(release);
  return `${RECORDS_FOLDER}/${release}.json`;
}

/** product names follow the release name rule (manifests/schema.ts NAME) */
export function acceptedRecordKey(product: string): string {
  assertReleaseName(product);
  return `${ACCEPTED_FOLDER}/${product}.json`;
}

/** Marks a cache_dir whose index/ follows a shelf (written by the first sync); before it, envelopes found only here are published, not removed. */
export const sharedMarkerPath = (root: string): string => join(root, 'index', 'shared');

/** MD5 of each local envelope by (mtime, size), so that a sync compares it with the record's ETag without reading the file again. */
export const envelopeMd5Path = (root: string): string => join(root, 'index', 'envelope-md5.json');

export const lockPath = (root: string): string => join(root, 'lock');
export const lockInfoPath = (root: string): string => join(root, 'lock.info');

/** The cache node's own OpenPGP key for signing its apt indexes (server/http/apt-signer.ts), made on first use, 0600. */
export const aptSigningKeyPath = (root: string): string => join(root, 'apt-signing-key.asc');
