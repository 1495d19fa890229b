/**
 * Which BlobBackend a cache node's config asks for (`storage:` in
 * airlock.yml). The filesystem one under cache_dir is the default; S3 keeps
 * the blobs in a bucket and everything else (partials, the lock, release
 * records) under cache_dir. The S3 SDK is loaded only when it is used.
 */
import type { BlobBackend } from '../types.js';

export interface S3StorageConfig {
  endpoint: string | null;
  bucket: string;
  /** key prefix; "" for none */
  prefix: string;
  region: string;
  forcePathStyle: boolean;
}

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
