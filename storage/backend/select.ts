/**
 * Which BlobBackend a cache node's config asks for (`storage:` in
 * airlock.yml). The filesystem one under cache_dir is the default; S3 keeps
 * the blobs and the release records in a bucket (index/ under cache_dir
 * follows the records), partials and the lock under cache_dir. The S3 SDK is
 * loaded only when it is used.
 */
import type { BlobBackend } from '../types.js';

export interface S3StorageConfig {
  endpoint: string | null;
  bucket: string;
  /** key prefix; "" for none */
  prefix: string;
  region: string;
  forcePathStyle: boolean;
  /** `airlock serve`: how often the bucket's release records are looked at (storage.s3.poll; default 5 s) */
  pollMs?: number;
  /** `airlock gc`: unreferenced blobs younger than this stay (storage.s3.gc_grace; default 1 h) */
  gcGraceMs?: number;
}

export const DEFAULT_POLL_MS = 5000;

export type StorageConfig = { backend: 'fs' } | { backend: 's3'; s3: S3StorageConfig };

/**
 * The backend for openStore's `backend`; undefined means the filesystem one
 * under cache_dir (openStore's default, which follows cache_dir wherever the
 * store is opened: relocate, serve's reload).
 */
export async function backendFromConfig(config: { storage?: StorageConfig }): Promise<BlobBackend | undefined> {
  const storage = config.storage;
  if (!storage || storage.backend === 'fs') return undefined;
  const { s3Backend } = await import('./s3.js');
  const s3 = storage.s3;
  return s3Backend({
    endpoint: s3.endpoint ?? undefined,
    bucket: s3.bucket,
    prefix: s3.prefix,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
  });
}
