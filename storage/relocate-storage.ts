/**
 * `airlock relocate s3://BUCKET/PREFIX` and `airlock relocate --to-fs
 * [NEW_DIR]`: moves the blobs of a live cache from `cache_dir/blobs/` into an
 * S3 bucket, or from the bucket back into a folder, with the folder move's
 * guarantee (relocate.ts): the config always names one complete, verified
 * copy, and running the command again continues.
 *
 * Phases, in the same journal as a folder move (`relocate.json` in cache_dir,
 * with `kind: "storage"`; from `verified` on also in NEW_DIR when the blobs
 * come back into another folder):
 *
 *   copying   the bucket answered (credentials, bucket: checked before any
 *             copy); every blob copied and verified THERE, several at a time:
 *             - into the bucket: uploaded as stage uploads (uploadBlob: one
 *               hash pass over the file, sha256 and each part's MD5, then
 *               every request with the Content-MD5 of the bytes hashed, so
 *               the gateway takes no other bytes), then read back from the
 *               bucket and hashed again;
 *             - into a folder: read from the bucket into the filesystem
 *               backend's writer, which hashes while writing, fsyncs and
 *               renames into place only on a match (EINTEGRITY otherwise).
 *             A blob already there is hashed where it is and kept when it
 *             matches, sent again when it does not.
 *   verified  every blob there; into a bucket, then every release record
 *             and accepted serial of this cache put on the bucket's shelf
 *             (releases/sync.ts) and read back, so the bucket is complete
 *             before the switch. Out of a bucket, index/ was synced from the
 *             bucket's records first (a writer's sync), so the folder keeps
 *             every release the bucket holds (that the trust root admits).
 *   (switch)  the config's `storage:` section (and `cache_dir` for NEW_DIR)
 *             rewritten in one atomic write: the commit point
 *   switched  running servers handed over (SIGHUP: they re-read storage:),
 *             then the old copy removed: `cache_dir/blobs/` unless
 *             --keep-old; a bucket's objects only with --remove-from-bucket,
 *             since other cache nodes may share the prefix.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, link as fsLink, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse as parseYaml } from 'yaml';
import { AirlockError, isAirlockError } from '../manifests/errors.js';
import { releaseBlobs } from '../manifests/index.js';
import { setConfigKeys, type ConfigValue } from '../common/config-write.js';
import { writeFileAtomic } from '../common/atomic.js';
import { fsBackend } from './backend/fs.js';
import type { S3BlobBackend } from './backend/s3.js';
import { backendFromConfig, type StorageConfig } from './backend/select.js';
import { acquireWriterLock } from './lock.js';
import { RECORDS_FOLDER, blobPath, blobsDir, envelopePath, lockInfoPath, lockPath, partialDir, quarantineDir, releaseRecordKey, sharedMarkerPath } from './paths.js';
import { LevelIndex, decodeStored, listEnvelopeFiles, putAccepted, readAcceptedFile, syncRecords } from './releases/index.js';
import { journalPath, removeOld, type RelocateHooks, type RelocateJournal, type RelocatePausePoint } from './relocate.js';
import { handOverServers, servingDir, storageLabel, type HandOverResult } from './serving.js';
import { openStore } from './store.js';
import { freeDiskBytes } from './support/probe.js';
import type { BlobBackend, RecordShelf } from './types.js';

/** blobs in flight at once (an upload streams from the file: little memory each) */
const LANES = 3;

export type StorageDirection = 'to-s3' | 'to-fs';

export interface StorageJournal {
  version: 1;
  kind: 'storage';
  phase: 'copying' | 'verified' | 'switched';
  direction: StorageDirection;
  /** cache_dir before the move */
  from: string;
  /** cache_dir after it: the same folder, or NEW_DIR for --to-fs NEW_DIR */
  to: string;
  source: StorageConfig;
  target: StorageConfig;
  keepOld: boolean;
  removeFromBucket: boolean;
  configFile: string;
  started: string;
  updated: string;
}

export interface StorageProgress {
  /** blobs checked there so far (sent, or found there and verified) */
  phase: 'upload' | 'download';
  bytes: number;
  total: number;
  current: string;
}

export interface RelocateStorageOptions {
  /** cache_dir and storage: as the config says now */
  cacheDir: string;
  storage: StorageConfig;
  /** where the blobs go */
  target: StorageConfig;
  /** --to-fs NEW_DIR: the new cache_dir (default: the same folder) */
  to?: string;
  configFile: string;
  /** keep the old copy on the filesystem (cache_dir/blobs, or the old folder) */
  keepOld?: boolean;
  /** after a move out of a bucket, delete the moved blobs and records from it */
  removeFromBucket?: boolean;
  /** root.json bytes (the config's `trust`): release records read from the bucket are checked against it (releases/sync.ts) */
  trustRoot?: Uint8Array | null;
  lockWaitMs?: number;
  handOverWaitMs?: number;
  onProgress?: (p: StorageProgress) => void;
  onNote?: (message: string) => void;
  hooks?: RelocateHooks;
  /** tests: the backend of a storage config (default: backendFromConfig, credentials from the environment) */
  openBackend?: (storage: StorageConfig) => Promise<BlobBackend | undefined>;
}

export interface RelocateStorageResult {
  direction: StorageDirection;
  outcome: 'relocated' | 'finished' | 'nothing';
  from: string;
  to: string;
  /** storageLabel of each side */
  source: string;
  target: string;
  configFile: string;
  blobs: {
    total: number;
    bytes: number;
    /** copied by this run */
    copied: number;
    copiedBytes: number;
    /** already there, hashed there and kept */
    present: number;
    /** there but wrong (size or digest), replaced */
    replaced: number;
    /** into a bucket: blobs the prefix held that this cache does not (left as they are) */
    others: number;
  };
  records: { published: string[]; present: string[] };
  oldRemoved: boolean;
  bucket: { removed: number; kept: number; records: string[] } | null;
  servers: HandOverResult;
}

const where = (s: StorageConfig): string => (s.backend === 'fs' ? 'the filesystem' : `s3://${s.s3.bucket}/${s.s3.prefix.replace(/^\/+|\/+$/g, '')}`);

/** The storage: section as it is written into airlock.yml. */
export function storageYaml(s: StorageConfig): Record<string, ConfigValue> {
  if (s.backend === 'fs') return { backend: 'fs' };
  const s3: Record<string, ConfigValue> = { bucket: s.s3.bucket, prefix: s.s3.prefix, region: s.s3.region, force_path_style: s.s3.forcePathStyle };
  return { backend: 's3', s3: s.s3.endpoint ? { endpoint: s.s3.endpoint, ...s3 } : s3 };
}

/** cache_dir's relocate journal: this move's, or a folder move's (which has no kind) */
async function readJournal(cacheDir: string): Promise<StorageJournal | RelocateJournal | null> {
  try {
    return JSON.parse(await readFile(journalPath(cacheDir), 'utf8')) as StorageJournal | RelocateJournal;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AirlockError('EUSAGE', `${journalPath(cacheDir)} cannot be read (${(e as Error).message}); inspect it and remove it to start over`);
  }
}

async function writeJournal(cacheDir: string, j: StorageJournal): Promise<void> {
  await writeFileAtomic(journalPath(cacheDir), Buffer.from(`${JSON.stringify({ ...j, updated: new Date().toISOString() }, null, 2)}\n`));
}

async function hashStream(stream: Readable): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

/** The blob's bytes as `backend` holds them, hashed. */
async function hashThere(backend: BlobBackend, digest: string): Promise<{ sha256: string; size: number }> {
  return hashStream(await backend.read(digest));
}

/** The blob sent through `to`'s verified writer from `from`'s stream: `to` refuses bytes that are not the blob. */
async function sendBlob(from: BlobBackend, to: BlobBackend, digest: string, size: number): Promise<void> {
  const w = await to.writer({ sha256: digest, size });
  try {
    await pipeline(await from.read(digest), w.stream);
  } catch (e) {
    // the writer refusing the bytes (EINTEGRITY: more than the size) or the source failing: nothing is kept
    await w.cancel().catch(() => {});
    throw e;
  }
  await w.commit();
}

/** A bucket's release records (RecordShelf); null for a backend without (the filesystem). */
const shelfOf = (b: BlobBackend): RecordShelf | null => b.shelf?.() ?? null;

/**
 * Into a bucket: each release record of this cache on the shelf, and the
 * accepted serials (never lowered); each record put is read back. A release
 * whose record there is another envelope is refused; with `result` null
 * only that check runs (before anything is copied).
 */
async function publishRecords(cacheDir: string, shelf: RecordShelf, result: RelocateStorageResult | null): Promise<void> {
  for (const release of await listEnvelopeFiles(cacheDir)) {
    const key = releaseRecordKey(release);
    const mine = await readFile(envelopePath(cacheDir, release));
    const there = await shelf.get(key);
    if (there && !there.bytes.equals(mine)) {
      throw new AirlockError(
        'EUSAGE',
        `relocate: ${shelf.where}${key} holds another envelope of release ${release} than this cache (another cache node staged a different one); ` +
          'nothing was switched: decide which one the site keeps (airlock gc removes a release), then run again',
        { release, key: `${shelf.where}${key}` },
      );
    }
    if (!result) continue;
    if (there) {
      result.records.present.push(release);
      continue;
    }
    await shelf.put(key, mine);
    const back = await shelf.get(key);
    if (!back || !back.bytes.equals(mine)) {
      throw new AirlockError('EINTEGRITY', `relocate: ${shelf.where}${key} does not read back as the envelope put there; run again`, { release });
    }
    result.records.published.push(release);
  }
  if (result) for (const a of Object.values(await readAcceptedFile(cacheDir))) await putAccepted(shelf, a);
}

/** index/ made to follow the shelf as a writer does (publish, mark index/shared, re-index), under the lock this process holds. */
async function syncAsWriter(cacheDir: string, shelf: RecordShelf, trustRoot: Uint8Array | null, note: (m: string) => void): Promise<void> {
  const db = await LevelIndex.open(cacheDir);
  try {
    await syncRecords(cacheDir, shelf, { trustRoot, publish: true, db, warn: (line) => note(line) });
  } finally {
    await db.close();
  }
}

/**
 * Into the bucket as stage puts a blob there (the S3 backend's `adopt`): the
 * local file is hashed once (its sha256 must be its name; the MD5 of each
 * part is taken in the same pass), then uploaded from the file, one PUT or
 * parts in parallel, each request carrying the Content-MD5 of the bytes
 * hashed, so the gateway refuses anything else; memory stays flat whatever
 * the blob's size. `adopt` consumes the file it is given: a hard link under
 * partial/ (same filesystem), so the blob itself stays for the serves still
 * reading it. Where no link can be made, the verified writer streams it.
 */
async function uploadBlob(cacheDir: string, bucket: S3BlobBackend, digest: string, size: number): Promise<void> {
  await mkdir(partialDir(cacheDir), { recursive: true });
  const link = join(partialDir(cacheDir), `${digest}.${randomBytes(4).toString('hex')}.relocating`);
  try {
    await fsLink(blobPath(cacheDir, digest), link);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw e;
    return sendBlob(fsBackend(cacheDir), bucket, digest, size);
  }
  try {
    await bucket.adopt({ sha256: digest, size }, link);
  } finally {
    await rm(link, { force: true });
  }
}

/** Files of the folder itself, never copied into NEW_DIR: per-process, the move's own, the old blobs, scratch. */
function skipLocal(root: string, abs: string): boolean {
  const under = (p: string): boolean => abs === p || abs.startsWith(p + sep);
  return (
    under(lockPath(root)) ||
    abs === lockInfoPath(root) ||
    abs === journalPath(root) ||
    under(servingDir(root)) ||
    under(blobsDir(root)) ||
    under(quarantineDir(root)) ||
    under(partialDir(root)) ||
    abs.endsWith('.relocating')
  );
}

/** cache_dir's own files (release records, apt key…) copied into NEW_DIR, each whole (temp + rename). */
async function copyLocal(from: string, to: string, dir = from): Promise<number> {
  let n = 0;
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const abs = join(dir, name);
    if (skipLocal(from, abs)) continue;
    const s = await stat(abs);
    if (s.isDirectory()) n += await copyLocal(from, to, abs);
    else if (s.isFile()) {
      const dest = join(to, relative(from, abs));
      await mkdir(dirname(dest), { recursive: true });
      await copyFile(abs, `${dest}.relocating`);
      await rename(`${dest}.relocating`, dest);
      n++;
    }
  }
  return n;
}

export async function relocateStorage(opts: RelocateStorageOptions): Promise<RelocateStorageResult> {
  const from = resolve(opts.cacheDir);
  const to = resolve(opts.to ?? opts.cacheDir);
  const configFile = resolve(opts.configFile);
  const direction: StorageDirection = opts.target.backend === 's3' ? 'to-s3' : 'to-fs';
  const note = opts.onNote ?? (() => {});
  const pausePoint = opts.hooks?.pause ?? (async () => {});
  const openBackend = opts.openBackend ?? ((s: StorageConfig) => backendFromConfig({ storage: s }));
  const result: RelocateStorageResult = {
    direction,
    outcome: 'nothing',
    from,
    to,
    source: storageLabel(opts.storage),
    target: storageLabel(opts.target),
    configFile,
    blobs: { total: 0, bytes: 0, copied: 0, copiedBytes: 0, present: 0, replaced: 0, others: 0 },
    records: { published: [], present: [] },
    oldRemoved: false,
    bucket: null,
    servers: { moved: [], stuck: [] },
  };

  // ---- after the switch: the config already names the target ----
  if (storageLabel(opts.storage) === storageLabel(opts.target)) {
    const j = await readJournal(from);
    if (!j || j.kind !== 'storage' || j.to !== from) {
      note(`the blobs are already in ${where(opts.target)}${direction === 'to-fs' ? ` (cache_dir ${from})` : ''}; nothing to do`);
      return result;
    }
    result.outcome = 'finished';
    result.from = j.from;
    note(`finishing an earlier move of the blobs from ${where(j.source)} to ${where(j.target)}`);
    await finish(j, result, openBackend, note, pausePoint, opts.handOverWaitMs);
    return result;
  }

  if (direction === 'to-s3' && opts.storage.backend !== 'fs') {
    throw new AirlockError(
      'EUSAGE',
      `relocate: the blobs are in ${where(opts.storage)} already; moving them to another bucket is not supported (relocate --to-fs first)`,
      { from: storageLabel(opts.storage), to: storageLabel(opts.target) },
    );
  }
  if (direction === 'to-fs' && opts.storage.backend !== 's3') {
    throw new AirlockError('EUSAGE', `relocate --to-fs: the blobs are in ${from}/blobs already (storage.backend: fs)`, { from });
  }
  if (to !== from && (to.startsWith(from + sep) || from.startsWith(to + sep))) {
    throw new AirlockError('EUSAGE', `relocate: ${to} and ${from} are nested; pick a folder outside the cache`, { from, to });
  }
  if (!existsSync(from)) throw new AirlockError('ENOTFOUND', `relocate: the cache ${from} does not exist`, { from });
  const earlier = await readJournal(from);
  if (earlier && (earlier.kind !== 'storage' || storageLabel(earlier.target) !== storageLabel(opts.target) || earlier.to !== to)) {
    const how =
      earlier.kind !== 'storage'
        ? `airlock relocate ${earlier.to}`
        : earlier.target.backend === 's3'
          ? `airlock relocate ${where(earlier.target).replace(/\/$/, '')}`
          : `airlock relocate --to-fs${earlier.to !== earlier.from ? ` ${earlier.to}` : ''}`;
    throw new AirlockError(
      'EUSAGE',
      `relocate: another move of ${from} is in progress (${journalPath(from)}, to ${earlier.kind === 'storage' ? where(earlier.target) : earlier.to}); finish it with "${how}" first`,
      { from, journal: earlier },
    );
  }
  if (to !== from && !earlier && existsSync(to) && (await readdir(to)).length > 0) {
    const ours = existsSync(join(to, 'blobs')) || existsSync(join(to, 'index'));
    if (!ours) throw new AirlockError('EUSAGE', `relocate: ${to} is not empty; give an empty or new folder`, { to });
  }

  // ---- the bucket answers, with these credentials: before anything is copied ----
  const source = (await openBackend(opts.storage)) ?? fsBackend(from);
  const target = (await openBackend(opts.target)) ?? fsBackend(to);
  const bucket = (direction === 'to-s3' ? target : source) as S3BlobBackend;
  // every blob there with its size, from one listing (no HEAD per blob)
  const inBucket = new Map<string, number>();
  try {
    if (bucket.listSized) for await (const b of bucket.listSized()) inBucket.set(b.digest, b.size);
    else for (const d of await bucket.listAll()) inBucket.set(d, (await bucket.stat(d))?.size ?? 0);
  } catch (e) {
    if (isAirlockError(e)) {
      throw new AirlockError(e.code, `relocate: ${e.message}; nothing was copied`, { ...e.details }, { cause: e });
    }
    throw e;
  }

  const keepOld = opts.keepOld ?? (earlier?.kind === 'storage' ? earlier.keepOld : false);
  const removeFromBucket = opts.removeFromBucket ?? (earlier?.kind === 'storage' ? earlier.removeFromBucket : false);
  const lock = await acquireWriterLock(from, { waitMs: opts.lockWaitMs, command: `airlock relocate (blobs to ${where(opts.target)})` });
  const journal: StorageJournal =
    earlier?.kind === 'storage'
      ? { ...earlier, keepOld, removeFromBucket }
      : {
          version: 1,
          kind: 'storage',
          phase: 'copying',
          direction,
          from,
          to,
          source: opts.storage,
          target: opts.target,
          keepOld,
          removeFromBucket,
          configFile,
          started: new Date().toISOString(),
          updated: '',
        };
  const shelf = shelfOf(bucket);
  try {
    if (shelf && direction === 'to-s3') await publishRecords(from, shelf, null);
    // out of a bucket: the folder keeps every release the bucket holds, as a writer's sync takes them
    if (shelf && direction === 'to-fs') await syncAsWriter(from, shelf, opts.trustRoot ?? null, note);

    // ---- copying ----
    const items: Array<{ digest: string; size: number }> = [];
    if (direction === 'to-fs') for (const [digest, size] of inBucket) items.push({ digest, size });
    else {
      const local = fsBackend(from);
      for (const digest of await local.listAll()) {
        const st = await local.stat(digest);
        if (st) items.push({ digest, size: st.size });
      }
    }
    items.sort((a, b) => (a.digest < b.digest ? -1 : 1));
    result.blobs.total = items.length;
    result.blobs.bytes = items.reduce((n, i) => n + i.size, 0);
    if (direction === 'to-s3') {
      const ours = new Set(items.map((i) => i.digest));
      const others = [...inBucket.keys()].filter((d) => !ours.has(d));
      result.blobs.others = others.length;
      if (others.length > 0) {
        note(
          `${where(opts.target)} already holds ${others.length} blob(s) this cache does not: fine, blobs are content-addressed ` +
            '(other cache nodes may share this prefix); they are left as they are',
        );
      }
    } else {
      await mkdir(to, { recursive: true });
      const held = new Set(await fsBackend(to).listAll());
      const needed = items.filter((i) => !held.has(i.digest)).reduce((n, i) => n + i.size, 0);
      const margin = 4 * 1024 * 1024;
      const { free } = await freeDiskBytes(to);
      if (needed + margin > free) {
        throw new AirlockError(
          'ENOSPACE',
          `relocate: ${to} has ${free} bytes free, the blobs need ${needed + margin} more (${needed} of blobs + ${margin} margin)`,
          { to, needed: needed + margin, free },
        );
      }
    }
    journal.phase = 'copying';
    await writeJournal(from, journal);

    let done = 0;
    let doneBytes = 0;
    const half = Math.floor(items.length / 2);
    let gate: Promise<void> | null = null;
    const phase = direction === 'to-s3' ? 'upload' : 'download';
    await lanes(items, async ({ digest, size }) => {
      if (gate) await gate;
      await withRetries(`blob sha256:${digest}`, () => copyOne(digest, size));
      done++;
      doneBytes += size;
      opts.onProgress?.({ phase, bytes: doneBytes, total: result.blobs.bytes, current: digest });
      // a known point half-way for tests (no new blob starts while it is held)
      if (done === half && half > 0) gate = pausePoint('copying');
    });

    async function copyOne(digest: string, size: number): Promise<void> {
      // into the bucket its listing says what is there; in a folder, a stat does
      const there = direction === 'to-s3' ? (inBucket.has(digest) ? { size: inBucket.get(digest)! } : null) : await target.stat(digest);
      if (there) {
        const found = there.size === size ? await hashThere(target, digest) : { sha256: null, size: there.size };
        if (found.sha256 === digest && found.size === size) {
          result.blobs.present++;
          return;
        }
        // wrong bytes under the blob's name (a damaged object, a truncated file): replaced by the right ones
        note(`${where(opts.target)}: blob sha256:${digest} there holds ${found.size} bytes${found.sha256 ? ` with sha256:${found.sha256}` : ''}; sending it again`);
        await target.delete(digest);
        inBucket.delete(digest);
        result.blobs.replaced++;
      }
      try {
        if (direction === 'to-s3') await uploadBlob(from, bucket, digest, size);
        else await sendBlob(source, target, digest, size);
      } catch (e) {
        if (isAirlockError(e) && e.code === 'EINTEGRITY') {
          throw new AirlockError(
            'EINTEGRITY',
            direction === 'to-fs'
              ? `relocate: blob sha256:${digest} as the bucket holds it is not that blob (${e.message}); nothing switched: ` +
                  'run "airlock verify" to quarantine it and "airlock stage" to fetch it again, then relocate again'
              : `relocate: blob sha256:${digest} in ${from}/blobs is not that blob (${e.message}); nothing switched: ` +
                  'run "airlock verify" to quarantine it and "airlock stage" to fetch it again, then relocate again',
            { sha256: digest, ...e.details },
            { cause: e },
          );
        }
        throw e;
      }
      // read back from where it now is: the copy is judged by what is there
      const back = await hashThere(target, digest);
      if (back.sha256 !== digest || back.size !== size) {
        await target.delete(digest).catch(() => {});
        throw new AirlockError(
          'EINTEGRITY',
          `relocate: blob sha256:${digest} reads back from ${where(opts.target)} as ${back.size} bytes with sha256:${back.sha256}; removed it there, run again`,
          { sha256: digest, expected: { size }, found: back },
        );
      }
      if (direction === 'to-s3') inBucket.set(digest, size);
      result.blobs.copied++;
      result.blobs.copiedBytes += size;
    }

    if (to !== from) {
      // --to-fs NEW_DIR: the release records and the rest of cache_dir go along, and NEW's index is made again
      await copyLocal(from, to);
      const fresh = await openStore({ cacheDir: to, write: true });
      try {
        await fresh.rebuildIndex();
      } finally {
        await fresh.close();
      }
    }
    // the bucket complete before the switch: the records, after the blobs they name
    if (shelf && direction === 'to-s3') await publishRecords(from, shelf, result);
    journal.phase = 'verified';
    if (to !== from) await writeJournal(to, journal);
    await writeJournal(from, journal);
    await pausePoint('verified');

    // ---- the commit point: storage (and cache_dir) in one atomic write ----
    await setConfigKeys(configFile, { ...(to !== from ? { cache_dir: to } : {}), storage: storageYaml(opts.target), ...(await bucketOnlyKeys(configFile, direction, note)) });
    await pausePoint('switched');
    journal.phase = 'switched';
    if (to !== from) await writeJournal(to, journal);
    await writeJournal(from, journal);
    if (shelf && direction === 'to-s3') {
      // index/ follows the bucket from now on; any later writer would do this too, so a failure only says so
      await syncAsWriter(from, shelf, opts.trustRoot ?? null, note).catch((e: unknown) =>
        note(`the release records of ${shelf.where} were not synced into ${from}/index yet (${(e as Error).message}); the next stage or gc does it`),
      );
    }
  } finally {
    await lock.release().catch(() => {});
  }
  result.outcome = 'relocated';
  await finish(journal, result, openBackend, note, pausePoint, opts.handOverWaitMs);
  return result;
}

/** After the switch: servers handed over, then the old copy removed as the journal says; the journal goes last. */
async function finish(
  j: StorageJournal,
  result: RelocateStorageResult,
  openBackend: (s: StorageConfig) => Promise<BlobBackend | undefined>,
  note: (m: string) => void,
  pausePoint: (p: RelocatePausePoint) => Promise<void>,
  waitMs: number | undefined,
): Promise<void> {
  const sameFolder = j.from === j.to;
  if (existsSync(j.from)) {
    result.servers = await handOverServers(j.from, { waitMs, storage: sameFolder ? storageLabel(j.target) : undefined });
    if (result.servers.stuck.length > 0) {
      note(
        `airlock serve (pid ${result.servers.stuck.join(', ')}) still serves from ${where(j.source)}, so it is kept: ` +
          `restart it (or send it SIGHUP), then run the same relocate again to remove it`,
      );
      return; // the journal stays: the next run finishes
    }
  }
  if (j.direction === 'to-s3') {
    if (!j.keepOld) {
      await rm(blobsDir(j.from), { recursive: true, force: true });
      await pausePoint('removing');
      result.oldRemoved = true;
    }
  } else {
    // the folder no longer follows a bucket's records
    await rm(sharedMarkerPath(j.to), { force: true });
    if (!sameFolder && !j.keepOld && existsSync(j.from)) {
      await removeOld(j.from, pausePoint);
      result.oldRemoved = true;
    }
    if (j.removeFromBucket) {
      result.bucket = await emptyBucket(j, openBackend, note);
    } else {
      note(`the blobs stay in ${where(j.source)} as well (other cache nodes may share it); --remove-from-bucket deletes them`);
    }
  }
  if (!sameFolder) await rm(journalPath(j.from), { force: true });
  await rm(journalPath(j.to), { force: true });
}

/** Keys that need blobs in a bucket (redirect_blobs) are turned off in the same write that takes the blobs out of it: the config must stay valid. */
async function bucketOnlyKeys(configFile: string, direction: StorageDirection, note: (m: string) => void): Promise<Record<string, ConfigValue>> {
  if (direction !== 'to-fs') return {};
  const text = await readFile(configFile, 'utf8').catch(() => '');
  const values = (parseYaml(text) ?? {}) as Record<string, unknown>;
  if (values.redirect_blobs !== true) return {};
  note(`${configFile}: redirect_blobs set to false (presigned redirects need blobs in a bucket)`);
  return { redirect_blobs: false };
}

/**
 * --remove-from-bucket: the records of the releases this folder now holds
 * (the same envelope) are deleted from the bucket, then the blobs it holds,
 * except any blob that a release record it does not hold still names (some
 * other cache node's release); a record that cannot be read keeps every blob.
 */
async function emptyBucket(
  j: StorageJournal,
  openBackend: (s: StorageConfig) => Promise<BlobBackend | undefined>,
  note: (m: string) => void,
): Promise<{ removed: number; kept: number; records: string[] }> {
  const bucket = (await openBackend(j.source)) as S3BlobBackend;
  const shelf = shelfOf(bucket);
  const held = new Set(await fsBackend(j.to).listAll());
  const out = { removed: 0, kept: 0, records: [] as string[] };
  const needed = new Set<string>();
  let unreadable: string | null = null;
  if (shelf) {
    for (const entry of await shelf.list(RECORDS_FOLDER)) {
      const key = `${RECORDS_FOLDER}/${entry.name}`;
      const release = entry.name.replace(/\.json$/, '');
      const got = await shelf.get(key);
      if (!got) continue;
      // a key that names no release (envelopePath refuses it) is not ours
      const mine = await Promise.resolve()
        .then(() => readFile(envelopePath(j.to, release)))
        .catch(() => null);
      if (mine && mine.equals(got.bytes)) {
        await shelf.delete(key);
        out.records.push(release);
        continue;
      }
      try {
        for (const b of releaseBlobs(decodeStored(got.bytes, key).manifest)) needed.add(b.sha256);
      } catch {
        unreadable ??= `${shelf.where}${key}`;
      }
    }
  }
  for (const digest of await bucket.listAll()) {
    if (!held.has(digest) || unreadable !== null || needed.has(digest)) {
      out.kept++;
      continue;
    }
    await bucket.delete(digest);
    out.removed++;
  }
  if (unreadable) note(`${where(j.source)}: ${unreadable} cannot be read, so no blob was deleted from the bucket (it may name any of them)`);
  else if (out.kept > 0) note(`${where(j.source)}: kept ${out.kept} blob(s) that this cache does not hold or that other release records there name`);
  return out;
}

/** errno codes of this host's own disk: a copy that failed with one of them is not tried again */
const LOCAL_FAILURES = new Set(['ENOSPC', 'EDQUOT', 'EACCES', 'EPERM', 'EROFS', 'EIO', 'ENOENT', 'EMFILE', 'ENFILE']);

/**
 * One blob's copy, tried again (3 times in all) when the network or the
 * gateway failed it (a reset, a 5xx, a body cut short); wrong bytes, a full
 * disk and the like are final. A copy is whole or absent, so a new attempt
 * starts over.
 */
async function withRetries(what: string, copy: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await copy();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const transient = isAirlockError(e) ? e.code === 'EUPSTREAM' : !(code && LOCAL_FAILURES.has(code));
      if (!transient) throw e;
      if (attempt >= 3) {
        throw isAirlockError(e) ? e : new AirlockError('EUPSTREAM', `relocate: ${what}: ${(e as Error).message}; run again to continue`, {}, { cause: e });
      }
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

/** Runs `work` over `items`, LANES at a time; the first failure stops new work and is thrown once all in flight ended. */
async function lanes<T>(items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const lane = async (): Promise<void> => {
    while (failure === null && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(LANES, items.length) }, lane));
  if (failure !== null) throw failure;
}
