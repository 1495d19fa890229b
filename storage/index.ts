/**
 * The storage layer's facade: what `server/` and `client/` may use. It only
 * re-exports; the contracts live in types.ts and, for the Store, beside
 * openStore in store.ts.
 */
export * from './types.js';

export { openStore, type IngestOptions, type OpenStoreOptions, type RecordsOptions, type Store } from './store.js';
export type { RehashReport } from './rehash.js';
/** content/pull.ts: the one pull loop (many blobs, parallel, verified, progress) for stage and the node. */
export { pullBlobs, type PullItem, type PullOptions, type PullReport, type PullDone, type PullFailure } from './content/pull.js';
export { memoryFetcher, type MemoryFault, type MemoryFetcher } from './fetch/memory.js';
export { fsBackend, type FsBlobBackend } from './backend/fs.js';
/** backend/select.ts: the blob backend airlock.yml's `storage:` asks for (undefined: the filesystem one under cache_dir) */
export { backendFromConfig, type StorageConfig, type S3StorageConfig } from './backend/select.js';
export { LAYOUT_VERSION, isDigest, assertDigest, assertReleaseName, aptSigningKeyPath, releaseRecordKey, acceptedRecordKey } from './paths.js';
/** releases/sync.ts: index/ as a cache of a shelf's release records (a store with one syncs by itself; relocate and tests may call it); memory-shelf.ts: a shelf for tests */
export { syncRecords, admitRecord, newSyncMemo, type SyncOptions, type SyncReport, type SyncMemo, type SkippedRecord } from './releases/sync.js';
export { memoryShelf } from './releases/memory-shelf.js';
export { acquireWriterLock, readLockInfo, isLocked, type LockInfo, type WriterLock } from './lock.js';
/** fetch/http.ts: the real got-based Fetcher and http client (proxy from --proxy or the environment, CONNECT, --ca-file); fetch/proxy.ts: proxy choice. */
export { httpFetcher, createHttpClient, fetchRange, fetchResult, statusError, type HttpClient, type HttpClientOptions, type HttpResponse } from './fetch/http.js';
export { proxyFor, bypassesProxy, hostPort } from './fetch/proxy.js';
/** fetch/whole.ts: one small answer (release list, envelope), capped and due within a deadline. */
export { fetchWhole, type WholeOptions } from './fetch/whole.js';
