/**
 * The storage layer's facade: what `server/` and `client/` may use.
 *
 * CONTRACT (other folders code against these signatures; the bodies live in
 * the files named beside each and replace the stubs below).
 */
import type { Readable } from 'node:stream';
import type { AcceptedSerial, BlobRef } from '../manifests/types.js';
import type { VerifiedRelease } from '../manifests/index.js';
import type { IngestTuning } from './content/ingest.js';
import type {
  BlobBackend,
  BlobStat,
  ByteRange,
  Fetcher,
  IngestResult,
  ReleaseStatus,
  StoredRelease,
} from './types.js';

export * from './types.js';

export interface OpenStoreOptions {
  cacheDir: string;
  /** take the writer lock (proper-lockfile on cache_dir); readers need none */
  write?: boolean;
  /** how long a second writer waits for the lock before ELOCKED (default 5 s) */
  lockWaitMs?: number;
  /** defaults to the filesystem backend under cache_dir/blobs */
  backend?: BlobBackend;
}

/** Ingest tuning: abort signal, progress, retries with backoff, stall timeout (storage/content/ingest.ts). */
export type IngestOptions = IngestTuning;

export interface VerifyReport {
  checked: number;
  ok: number;
  corrupt: Array<{ sha256: string; expectedSize: number | null; foundSize: number; foundSha256: string; quarantinedAs: string }>;
  missing: Array<{ sha256: string; size: number; paths: string[] }>;
}

export interface Store {
  readonly cacheDir: string;
  readonly backend: BlobBackend;
  readonly writable: boolean;

  // ---- blobs (readers) ----
  stat(digest: string): Promise<BlobStat | null>;
  read(digest: string, range?: ByteRange): Promise<Readable>;

  // ---- ingest (writers) ----
  /**
   * Resumable, verified download: continues a partial from `partial/` (re-hashing
   * what is there), tries `urls` in order, retries with backoff, cuts at size+1,
   * refuses wrong bytes with EINTEGRITY, commits by atomic rename. Concurrent
   * calls for one digest are coalesced. Already present → fetched:false.
   */
  ingestFromUrls(expected: BlobRef, urls: string[], fetcher: Fetcher, opts?: IngestOptions): Promise<IngestResult>;
  /** One-shot verified ingest of a stream (bundles, tests). */
  ingestStream(expected: BlobRef, stream: Readable, opts?: IngestOptions): Promise<IngestResult>;

  // ---- releases ----
  /** Stores the verified envelope and persists the new accepted serial, atomically. */
  putRelease(verified: VerifiedRelease): Promise<void>;
  getRelease(release: string): Promise<StoredRelease | null>;
  listReleases(): Promise<StoredRelease[]>;
  /** Changes whenever a release is stored or removed (by any process): readers compare it to know their view is stale. */
  releasesStamp(): Promise<number>;
  acceptedSerials(): Promise<Record<string, AcceptedSerial>>;
  status(release: string): Promise<ReleaseStatus>;

  // ---- maintenance (writers) ----
  verify(release?: string, opts?: { onProgress?: (done: number, total: number) => void }): Promise<VerifyReport>;
  rebuildIndex(): Promise<{ releases: number; blobs: number }>;
  close(): Promise<void>;
}

export { openStore } from './store.js';
export { memoryFetcher, type MemoryFault, type MemoryFetcher } from './fetch/memory.js';
export { fsBackend, type FsBlobBackend } from './backend/fs.js';
export { LAYOUT_VERSION, isDigest, assertDigest, assertReleaseName } from './paths.js';
export { acquireWriterLock, readLockInfo, isLocked, type LockInfo, type WriterLock } from './lock.js';
/** fetch/http.ts: the real got-based Fetcher and http client (proxy from --proxy or the environment, CONNECT, --ca-file); fetch/proxy.ts: proxy choice. */
export { httpFetcher, createHttpClient, fetchRange, fetchResult, statusError, type HttpClient, type HttpClientOptions, type HttpResponse } from './fetch/http.js';
export { proxyFor, bypassesProxy, hostPort } from './fetch/proxy.js';
