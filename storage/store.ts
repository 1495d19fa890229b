/**
 * The Store (the contract `server/` and `client/` code against, through
 * storage/index.ts) and openStore, which wires the blob backend, the release
 * records (releases/), ingest, status, re-hashing and the writer lock into
 * one. It lives here, not in types.ts, because its ingest options are
 * content/ingest.ts's, and that file imports types.ts.
 *
 * A reader store (write: false) takes no lock and never opens the level
 * database, so `serve` and `status` work while `stage` writes from another
 * process: they read blobs/ and the envelope files only.
 *
 * With a backend that has a record shelf (blobs in a bucket), the bucket's
 * release records are the truth and index/ follows them: every store syncs
 * at open (a writer under its lock), `syncRecords()` again on demand (serve
 * polls), and putRelease / removeReleases write the bucket first.
 */
import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { assertNoRollback, releaseBlobs, type VerifiedRelease } from '../manifests/index.js';
import { AirlockError } from '../manifests/errors.js';
import type { AcceptedSerial, BlobRef } from '../manifests/types.js';
import { fsBackend } from './backend/fs.js';
import { ingestFeed, ingestFromUrls, ingestStream, type IngestContext, type IngestTuning } from './content/ingest.js';
import {
  LevelIndex,
  forgetReleases,
  listEnvelopeFiles,
  newSyncMemo,
  putAccepted,
  syncRecords,
  mergeAccepted,
  readAcceptedFile,
  readEnvelopeFile,
  readOutline,
  rebuildIndex,
  scanOutline,
  writeAcceptedFile,
  writeEnvelopeFile,
  writeOutline,
  type SyncReport,
} from './releases/index.js';
import { acquireWriterLock, type WriterLock } from './lock.js';
import { assertReleaseName, envelopesDir, indexDir, outlinePath, partialDir, releaseRecordKey } from './paths.js';
import { heldSet, releaseStatus, StreamedStatus } from './status.js';
import type { BlobBackend, BlobStat, ByteRange, Fetcher, IngestResult, ReleaseStatus, StoredRelease } from './types.js';
import { rehashBlobs, type RehashReport, type RehashTarget } from './rehash.js';

/** Where the cache node keeps its own apt signing key (server/http/apt-signer.ts); here so that serving need not load the facade. */
export { aptSigningKeyPath } from './paths.js';

/** an outline bigger than this (~2,000 artifacts) is streamed against one listing of the store */
const STREAM_OUTLINE_BYTES = 256 * 1024;

export interface OpenStoreOptions {
  cacheDir: string;
  /** take the writer lock (proper-lockfile on cache_dir); readers need none */
  write?: boolean;
  /** how long a second writer waits for the lock before ELOCKED (default 5 s) */
  lockWaitMs?: number;
  /** defaults to the filesystem backend under cache_dir/blobs */
  backend?: BlobBackend;
  /** how records read from the backend's shelf are checked (only with a backend that has one: S3) */
  records?: RecordsOptions;
}

export interface RecordsOptions {
  /** root.json bytes (the config's `trust`): a record is taken only with enough valid release signatures; null: decoded only */
  trustRoot?: Uint8Array | null;
  /** one line per record skipped (default: stderr) */
  warn?: (line: string, details: Record<string, unknown>) => void;
}

/** Ingest tuning: abort signal, progress, retries with backoff, stall timeout (storage/content/ingest.ts). */
export type IngestOptions = IngestTuning;

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
  /** One-shot verified ingest of a stream (tests, local files). */
  ingestStream(expected: BlobRef, stream: Readable, opts?: IngestOptions): Promise<IngestResult>;
  /** One-shot verified ingest fed chunk by chunk, each buffer reusable once its put resolved (bundles; content/ingest.ts). */
  ingestFeed(
    expected: BlobRef,
    feed: (put: (chunk: Buffer) => Promise<void>) => Promise<void>,
    opts?: Pick<IngestOptions, 'onProgress'>,
  ): Promise<IngestResult>;

  // ---- releases ----
  /** Stores the verified envelope and persists the new accepted serial, atomically (with a shelf: the bucket's record first). */
  putRelease(verified: VerifiedRelease): Promise<void>;
  /** Takes releases out (gc): the bucket's records first, then the local files; accepted serials stay. The caller re-indexes. */
  removeReleases(releases: string[]): Promise<void>;
  /** Pulls the shelf's release records into index/ (storage/releases/sync.ts); null without a shelf. */
  syncRecords(): Promise<SyncReport | null>;
  getRelease(release: string): Promise<StoredRelease | null>;
  listReleases(): Promise<StoredRelease[]>;
  /** Changes whenever a release is stored or removed (by any process): readers compare it to know their view is stale. */
  releasesStamp(): Promise<number>;
  acceptedSerials(): Promise<Record<string, AcceptedSerial>>;
  status(release: string): Promise<ReleaseStatus>;

  // ---- maintenance (writers) ----
  /** `airlock verify`: re-hash the blobs (of one release, or all), quarantine the corrupt ones */
  rehash(release?: string, opts?: { onProgress?: (done: number, total: number) => void }): Promise<RehashReport>;
  rebuildIndex(): Promise<{ releases: number; blobs: number }>;
  close(): Promise<void>;
}

export async function openStore(opts: OpenStoreOptions): Promise<Store> {
  const cacheDir = resolve(opts.cacheDir);
  const writable = opts.write === true;
  let lock: WriterLock | null = null;
  let db: LevelIndex | null = null;
  if (writable) {
    lock = await acquireWriterLock(cacheDir, { waitMs: opts.lockWaitMs });
    try {
      await mkdir(partialDir(cacheDir), { recursive: true });
      await mkdir(indexDir(cacheDir), { recursive: true });
      db = await LevelIndex.open(cacheDir);
    } catch (e) {
      await lock.release();
      throw e;
    }
  }
  const backend = opts.backend ?? fsBackend(cacheDir);
  const ctx: IngestContext = { root: cacheDir, backend, inflight: new Map() };
  let closed = false;
  const shelf = backend.shelf?.() ?? null;
  const memo = newSyncMemo();
  // one sync at a time per store (serve's poll and a request may ask together)
  let syncing: Promise<SyncReport> | null = null;
  const sync = (): Promise<SyncReport | null> => {
    if (!shelf) return Promise.resolve(null);
    syncing ??= syncRecords(cacheDir, shelf, {
      trustRoot: opts.records?.trustRoot ?? null,
      warn: opts.records?.warn,
      publish: writable,
      db,
      memo,
    }).finally(() => {
      syncing = null;
    });
    return syncing;
  };
  if (shelf) {
    try {
      await sync();
    } catch (e) {
      await db?.close();
      await lock?.release();
      throw e;
    }
  }

  const writer = (what: string): LevelIndex => {
    if (closed) throw new AirlockError('EINTERNAL', `${what}: the store is closed`);
    if (!db) throw new AirlockError('EINTERNAL', `${what} needs a store opened for writing (openStore({ write: true }))`);
    return db;
  };

  const recordBlob = async (db: LevelIndex, r: IngestResult): Promise<IngestResult> => {
    if (r.fetched) await db.putBlob(r.digest, { size: r.size, addedAt: new Date().toISOString() });
    return r;
  };

  const getRelease = async (release: string): Promise<StoredRelease | null> => {
    assertReleaseName(release);
    return readEnvelopeFile(cacheDir, release);
  };

  const listReleases = async (): Promise<StoredRelease[]> => {
    const out: StoredRelease[] = [];
    for (const name of await listEnvelopeFiles(cacheDir)) {
      const s = await readEnvelopeFile(cacheDir, name).catch(() => null);
      if (s) out.push(s);
    }
    return out;
  };

  const mustGetRelease = async (release: string): Promise<StoredRelease> => {
    const stored = await getRelease(release);
    if (stored) return stored;
    const known = await listEnvelopeFiles(cacheDir);
    throw new AirlockError(
      'ENOTFOUND',
      `release "${release}" is not in the cache ${cacheDir} (${known.length ? `known: ${known.join(', ')}` : 'no release staged yet'})`,
      { release, known },
    );
  };

  const acceptedSerials = async (): Promise<Record<string, AcceptedSerial>> =>
    mergeAccepted(await readAcceptedFile(cacheDir), db ? await db.accepted() : {});

  const store: Store = {
    cacheDir,
    backend,
    writable,

    stat: (digest: string): Promise<BlobStat | null> => backend.stat(digest),
    read: (digest: string, range?: ByteRange): Promise<Readable> => backend.read(digest, range),

    async ingestFromUrls(expected: BlobRef, urls: string[], fetcher: Fetcher, o?: IngestOptions): Promise<IngestResult> {
      const d = writer('ingest');
      return recordBlob(d, await ingestFromUrls(ctx, expected, urls, fetcher, o));
    },

    async ingestStream(expected: BlobRef, stream: Readable, o?: IngestOptions): Promise<IngestResult> {
      const d = writer('ingest');
      return recordBlob(d, await ingestStream(ctx, expected, stream, o));
    },

    async ingestFeed(expected, feed, o): Promise<IngestResult> {
      const d = writer('ingest');
      return recordBlob(d, await ingestFeed(ctx, expected, feed, o));
    },

    async putRelease(verified: VerifiedRelease): Promise<void> {
      const d = writer('putRelease');
      const { manifest } = verified;
      assertReleaseName(manifest.release);
      const known = (await acceptedSerials())[manifest.product];
      const next = verified.accepted;
      assertNoRollback(known, next);
      const accepted = known && known.serial > next.serial ? known : next;
      // Order matters for crash safety: with blobs in a bucket, its record
      // first (what every process over the bucket, and their gc, go by);
      // then the envelope file, the source of truth here (rebuild recovers
      // the rest), then one atomic level batch with the accepted serial,
      // then its mirror for readers.
      if (shelf) {
        await shelf.put(releaseRecordKey(manifest.release), verified.envelope);
        await putAccepted(shelf, accepted);
      }
      await writeEnvelopeFile(cacheDir, manifest.release, verified.envelope);
      const stored: StoredRelease = {
        product: manifest.product,
        release: manifest.release,
        serial: manifest.serial,
        envelope: verified.envelope,
        digest: verified.digest,
        manifest,
      };
      await writeOutline(cacheDir, stored);
      await d.putRelease(stored, accepted);
      await writeAcceptedFile(cacheDir, mergeAccepted(await readAcceptedFile(cacheDir), { [accepted.product]: accepted }));
    },

    async removeReleases(releases: string[]): Promise<void> {
      writer('removeReleases');
      for (const r of releases) assertReleaseName(r);
      if (shelf) for (const r of releases) await shelf.delete(releaseRecordKey(r));
      await forgetReleases(cacheDir, releases);
    },

    syncRecords: sync,

    getRelease,
    listReleases,

    async releasesStamp(): Promise<number> {
      // every envelope is renamed into this folder (or removed from it), which updates its mtime
      return stat(envelopesDir(cacheDir)).then(
        (s) => s.mtimeMs,
        () => 0,
      );
    },
    acceptedSerials,

    async status(release: string): Promise<ReleaseStatus> {
      // The outline spares decoding a big envelope; the envelope is the fallback.
      // A big release's outline is streamed against one listing of the store (bounded memory).
      assertReleaseName(release);
      const big = await stat(outlinePath(cacheDir, release)).then(
        (s) => s.size > STREAM_OUTLINE_BYTES,
        () => false,
      );
      if (big) {
        const streamed = new StreamedStatus(await heldSet(backend));
        const head = await scanOutline(cacheDir, release, (a, path) => streamed.add(a, path));
        if (head) return streamed.result(head);
      }
      const outline = await readOutline(cacheDir, release);
      if (outline) return releaseStatus(outline, backend);
      const stored = await mustGetRelease(release);
      return releaseStatus({ ...stored, artifacts: stored.manifest.artifacts }, backend);
    },

    async rehash(release?: string, o?: { onProgress?: (done: number, total: number) => void }): Promise<RehashReport> {
      const d = writer('rehash');
      const targets = new Map<string, RehashTarget>();
      const releases = release ? [await mustGetRelease(release)] : await listReleases();
      for (const r of releases) {
        for (const b of releaseBlobs(r.manifest)) {
          const t = targets.get(b.sha256);
          if (t) t.paths.push(...b.paths);
          else targets.set(b.sha256, { sha256: b.sha256, size: b.size, paths: [...b.paths] });
        }
      }
      if (!release) {
        for await (const digest of backend.list()) {
          if (!targets.has(digest)) targets.set(digest, { sha256: digest, size: null, paths: [] });
        }
      }
      const report = await rehashBlobs(backend, [...targets.values()], o?.onProgress);
      for (const c of report.corrupt) await d.deleteBlob(c.sha256);
      return report;
    },

    async rebuildIndex() {
      return rebuildIndex(cacheDir, writer('rebuildIndex'), backend);
    },

    async close() {
      if (closed) return;
      closed = true;
      await db?.close();
      await lock?.release();
    },
  };
  return store;
}
