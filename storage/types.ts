/**
 * The contracts of the storage layer, which `server/` and `client/` code
 * against. Implementations live beside this file; `storage/index.ts` is the
 * facade the rest of airlock imports from.
 */
import type { Readable, Writable } from 'node:stream';
import type { BlobRef, ReleaseManifest } from '../manifests/types.js';

export interface BlobStat {
  size: number;
  mtimeMs: number;
}

/** Inclusive byte range, as in HTTP. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * A blob writer: bytes go to `stream`; `commit()` checks sha256 and size
 * against what the writer was opened with and only then makes the blob
 * visible (atomic); `cancel()` throws the bytes away. Exactly one of them is
 * called.
 */
export interface BlobWriter {
  readonly stream: Writable;
  /**
   * Optional, instead of `stream`: takes `chunk` next and resolves once its
   * bytes are written, so the caller may then reuse the buffer (a reader
   * cycling through a few buffers allocates nothing per chunk). Several may
   * be in flight; never mixed with writes to `stream`.
   */
  put?(chunk: Buffer): Promise<void>;
  commit(): Promise<void>;
  cancel(): Promise<void>;
}

/** A blob held open on a file descriptor; whoever got it owns `fd` and closes it (`fs.close`). */
export interface OpenBlob {
  fd: number;
  /** from the same descriptor (fstat), so it is the size of the bytes that will be read */
  size: number;
}

/** Where a blob's file is: `root` + '/' + `relative` (see BlobBackend.localPath). */
export interface LocalBlobPath {
  root: string;
  relative: string;
}

/** The narrow backend every blob store implements (filesystem now, S3 later). */
export interface BlobBackend {
  stat(digest: string): Promise<BlobStat | null>;
  /** `highWaterMark`: chunk size of the stream (serving many streams at once wants smaller chunks than ingest) */
  read(digest: string, range?: ByteRange, opts?: { highWaterMark?: number }): Promise<Readable>;
  /**
   * Only for backends a client can fetch from itself (S3): a URL that GETs
   * the blob's bytes for `ttlSeconds` without credentials (a presigned URL),
   * answered with `contentType` when given. It is not checked that the blob
   * is there. `airlock serve` with `redirect_blobs` sends clients there (307);
   * nothing above storage/ builds it.
   */
  presign?(digest: string, ttlSeconds: number, opts?: { contentType?: string }): Promise<string>;
  /**
   * Optional: every blob with its size, as one listing gives them (S3's
   * ListObjectsV2 has each object's size), for figures that would otherwise
   * need a stat per blob. Backends without it: `list` and `stat`.
   */
  listSized?(): AsyncIterable<{ digest: string; size: number }>;
  /**
   * Only for backends that have descriptors (the filesystem): the blob opened
   * for reading, or null when absent. Serving prefers it to `read` (positional
   * reads into reused buffers, no stream per response); a backend without it
   * is served through `read`.
   */
  open?(digest: string): Promise<OpenBlob | null>;
  /**
   * Only for backends whose blobs are plain files on this host: where the
   * blob's file is or would be (it is not checked), as the folder every blob
   * lives under and the file's '/'-separated path below it (`sha256/ab/ab…`).
   * `airlock serve` behind nginx hands that path to nginx (X-Accel-Redirect),
   * which then sends the file itself; nothing above storage/ builds it.
   */
  localPath?(digest: string): LocalBlobPath;
  writer(expected: BlobRef): Promise<BlobWriter>;
  delete(digest: string): Promise<void>;
  list(): AsyncIterable<string>;
  /**
   * Only for backends shared by several cache nodes (S3): where release
   * records are kept beside the blobs, so every process over the same bucket
   * and prefix sees the same releases (storage/releases/sync.ts).
   */
  shelf?(): RecordShelf;
}

/** One object on a RecordShelf, as a listing says. */
export interface ShelfEntry {
  /** the key below the folder listed, e.g. "r1.json" */
  name: string;
  /** changes whenever the bytes do (S3: the ETag, without quotes) */
  etag: string;
  size: number;
  mtimeMs: number;
}

/**
 * Small records where every process sharing a blob backend sees them (a
 * bucket's PREFIX/releases/…): keys are '/'-separated and relative to the
 * backend's prefix; paths.ts names them.
 */
export interface RecordShelf {
  /** for messages, e.g. s3://airlock/site-a/ (a key is appended to it) */
  readonly where: string;
  /** the bytes and their etag, or null when there is no such record */
  get(key: string): Promise<{ bytes: Buffer; etag: string } | null>;
  /** replaces the record whole (readers see the old bytes or the new, never a mix); returns the new etag */
  put(key: string, bytes: Uint8Array): Promise<string>;
  /** no error when absent */
  delete(key: string): Promise<void>;
  /** every record directly below `folder` (one paginated listing) */
  list(folder: string): Promise<ShelfEntry[]>;
}

/** The network behind one method (python-tuf's fetcher). */
export interface FetchOptions {
  /** ask for the bytes from here on (Range); 0 = whole body */
  offset: number;
  /** stop reading after this many bytes from `offset` (size + 1 cap) */
  maxLength: number;
  signal?: AbortSignal;
}

export interface FetchResult {
  /** where `stream` starts: `offset` when Range was honoured, 0 when the upstream ignored it */
  offset: number;
  stream: Readable;
}

export interface Fetcher {
  fetch(url: string, opts: FetchOptions): Promise<FetchResult>;
}

export interface IngestProgress {
  digest: string;
  /** bytes verified/written so far for this blob */
  bytes: number;
  size: number;
}

/** Why one URL was given up for one blob (it may still have sent good bytes that were kept). */
export interface UrlFailure {
  url: string;
  code: string;
  /** the last error's message */
  reason: string;
  /** requests made to this URL for this blob in this run */
  attempts: number;
}

export interface IngestResult {
  digest: string;
  size: number;
  /** false when the blob was already in the store */
  fetched: boolean;
  /** bytes that came over the wire for this blob */
  transferred: number;
  /** bytes reused from a partial download */
  resumedFrom: number;
  /** the URL that sent the last bytes (null or absent when nothing was fetched) */
  url?: string | null;
  /** URLs given up before it, in the order tried */
  failed?: UrlFailure[];
}

/** A verified release as the store keeps it. */
export interface StoredRelease {
  product: string;
  release: string;
  serial: number;
  /** the signed envelope, byte for byte as verified */
  envelope: Buffer;
  /** sha256 hex of the canonical payload */
  digest: string;
  manifest: ReleaseManifest;
}

export interface ReleaseStatus {
  release: string;
  product: string;
  serial: number;
  ready: boolean;
  files: { total: number; present: number; missing: number };
  bytes: { total: number; present: number; missing: number };
  /** every blob still missing, with the artifact path(s) that need it */
  missing: Array<{ sha256: string; size: number; paths: string[] }>;
}
