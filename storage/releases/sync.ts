/**
 * The local index as a cache of a shelf (a bucket shared by several cache
 * nodes): `syncRecords` makes `index/envelopes/`, the outlines and
 * `index/accepted.json` follow the shelf's `releases/` and `accepted/`.
 *
 * - One listing of `releases/` per call; a record is fetched only when the
 *   local copy is not the same bytes (its MD5, which is the ETag of a single
 *   PUT, computed once per file and process), so a poll of an unchanged
 *   bucket costs one LIST.
 * - A record is taken only if it decodes as an envelope of the release its
 *   key names and, when a trust root is given, its signatures meet the root's
 *   release threshold (expiry does not block: the release was accepted when
 *   it was staged, and readers of local envelopes do not check it either).
 *   One that fails is skipped with one warning line naming its key (once
 *   per version of the record and process) and is not served.
 * - A local envelope whose record is gone (gc on any node) is removed,
 *   unless it was written after the listing began (a writer of this
 *   cache_dir puts the record first, then its local copy).
 * - Before the first sync of a cache_dir (no `index/shared`), envelopes
 *   found only here were staged before records went to the bucket: a writer
 *   publishes them, a reader keeps them (and leaves the marker to a writer).
 * - Accepted serials only rise: the shelf's and the local ones are merged.
 *
 * The level database (writers only) is re-indexed when anything changed.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../common/atomic.js';
import {
  decodeEnvelope,
  parseCanonicalJson,
  readSelfSignedRoot,
  sha256Hex,
  validateReleaseManifest,
  verifyRelease,
  type TrustedRoot,
} from '../../manifests/index.js';
import { AirlockError, isAirlockError } from '../../manifests/errors.js';
import type { AcceptedSerial } from '../../manifests/types.js';
import {
  ACCEPTED_FOLDER,
  RECORDS_FOLDER,
  acceptedRecordKey,
  assertReleaseName,
  envelopeMd5Path,
  envelopePath,
  envelopesDir,
  isDigest,
  releaseRecordKey,
  sharedMarkerPath,
} from '../paths.js';
import type { RecordShelf, StoredRelease } from '../types.js';
import type { LevelIndex } from './db.js';
import { decodeStored, listEnvelopeFiles, mergeAccepted, readAcceptedFile, writeAcceptedFile, writeEnvelopeFile } from './envelopes.js';
import { removeOutline, writeOutline } from './outline.js';
import { reindexReleases } from './rebuild.js';

/** a local file written this close to the listing may be a writer's newest release: kept until the next sync */
const FRESH_MS = 1000;

export interface SyncOptions {
  /** root.json bytes (the config's `trust`): records must carry enough valid release signatures; null: decoded only */
  trustRoot?: Uint8Array | null;
  /** one line per record skipped */
  warn?: (line: string, details: Record<string, unknown>) => void;
  /** writers: publish envelopes found only here before the first sync, and re-index `db` on change */
  publish?: boolean;
  db?: LevelIndex | null;
  /** what this process already knows (kept across calls by openStore) */
  memo?: SyncMemo;
}

export interface SkippedRecord {
  key: string;
  reason: string;
  /** the release as the record says, when it at least decodes (gc keeps its blobs: it may be a release this root cannot check) */
  claimed: StoredRelease | null;
}

export interface SyncReport {
  /** records taken into the local cache (new or changed) */
  fetched: string[];
  /** local envelopes removed: their record is gone */
  removed: string[];
  /** local envelopes put on the shelf (staged before records were shared) */
  published: string[];
  skipped: SkippedRecord[];
  /** releases on the shelf, taken or already current */
  releases: number;
  /** whether anything under index/ changed */
  changed: boolean;
}

/** Per process: the MD5 of each local envelope by (mtime, size), and the record versions already warned about. */
export interface SyncMemo {
  /** also kept in index/envelope-md5.json, so that a new process need not read every envelope again */
  md5: Map<string, { mtimeMs: number; size: number; md5: string }>;
  md5Loaded: boolean;
  md5Changed: boolean;
  /** release → the record version its local file (mtime, size) was found equal to, where an ETag is not the MD5 (multipart, KMS) */
  matched: Map<string, { etag: string; mtimeMs: number; size: number }>;
  /** key → the record version refused, and why (said once; reported on every sync, so gc still sees what it claims) */
  refused: Map<string, { etag: string; record: SkippedRecord }>;
  /** key → the version of an accepted record read, and what it said (null: refused) */
  accepted: Map<string, { etag: string; value: AcceptedSerial | null }>;
  root: { bytes: Uint8Array; root: TrustedRoot } | null;
}

export const newSyncMemo = (): SyncMemo => ({
  md5: new Map(),
  md5Loaded: false,
  md5Changed: false,
  matched: new Map(),
  refused: new Map(),
  accepted: new Map(),
  root: null,
});

type Md5Entry = { mtimeMs: number; size: number; md5: string };

/** a damaged or missing file is an empty cache: every entry is checked against the file's mtime and size before use */
async function loadMd5s(root: string, memo: SyncMemo): Promise<void> {
  memo.md5Loaded = true;
  try {
    const saved = JSON.parse(await readFile(envelopeMd5Path(root), 'utf8')) as Record<string, Md5Entry>;
    for (const [release, e] of Object.entries(saved)) {
      if (!memo.md5.has(release) && typeof e?.md5 === 'string' && typeof e.mtimeMs === 'number' && typeof e.size === 'number') {
        memo.md5.set(release, { mtimeMs: e.mtimeMs, size: e.size, md5: e.md5 });
      }
    }
  } catch {
    // none yet
  }
}

async function saveMd5s(root: string, memo: SyncMemo): Promise<void> {
  if (!memo.md5Changed) return;
  memo.md5Changed = false;
  await writeFileAtomic(envelopeMd5Path(root), Buffer.from(JSON.stringify(Object.fromEntries(memo.md5))));
}

/** "No expiry" for verifying a stored record: the latest date a Date holds. */
const NO_EXPIRY = new Date(8.64e15);

/**
 * Decodes (and, given a root, verifies) a record read from a shelf; throws
 * one AirlockError saying why it must not be used.
 */
export function admitRecord(bytes: Buffer, release: string, root: TrustedRoot | null): StoredRelease {
  if (root) {
    // signatures and threshold over the raw bytes, strict form and schema; expiry and rollback are not this step's
    const v = verifyRelease(bytes, { root, now: new Date(), acceptExpiredUntil: NO_EXPIRY });
    if (v.manifest.release !== release) {
      throw new AirlockError('EMANIFEST', `holds release "${v.manifest.release}", not "${release}"`, { release });
    }
    return { product: v.manifest.product, release, serial: v.manifest.serial, envelope: bytes, digest: v.digest, manifest: v.manifest };
  }
  // no root to check signatures against: still the strict form and the schema the gate applies
  const { payload } = decodeEnvelope(bytes);
  const manifest = validateReleaseManifest(parseCanonicalJson(payload, 'manifest payload'));
  if (manifest.release !== release) {
    throw new AirlockError('EMANIFEST', `holds release "${manifest.release}", not "${release}"`, { release });
  }
  return { product: manifest.product, release, serial: manifest.serial, envelope: bytes, digest: sha256Hex(payload), manifest };
}

async function fileMd5(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  return h.digest('hex');
}

/** whether the local envelope is known to be the record of version `etag`: its MD5 (computed once per version of the file), or an earlier comparison */
async function localIsCurrent(root: string, release: string, etag: string, memo: SyncMemo): Promise<{ present: boolean; current: boolean }> {
  const path = envelopePath(root, release);
  const s = await stat(path).catch(() => null);
  if (!s) return { present: false, current: false };
  const same = (e: { mtimeMs: number; size: number } | undefined): boolean => e !== undefined && e.mtimeMs === s.mtimeMs && e.size === s.size;
  const matched = memo.matched.get(release);
  if (same(matched) && matched!.etag === etag) return { present: true, current: true };
  let hit = memo.md5.get(release);
  if (!same(hit)) {
    hit = { mtimeMs: s.mtimeMs, size: s.size, md5: await fileMd5(path) };
    memo.md5.set(release, hit);
    memo.md5Changed = true;
  }
  return { present: true, current: hit!.md5 === etag };
}

/** remembers that the local file, as it is now, holds the record of version `etag` */
async function noteMatched(root: string, release: string, etag: string, memo: SyncMemo): Promise<void> {
  const s = await stat(envelopePath(root, release)).catch(() => null);
  if (s) memo.matched.set(release, { etag, mtimeMs: s.mtimeMs, size: s.size });
}

const reasonOf = (e: unknown): string => (isAirlockError(e) || e instanceof Error ? e.message : String(e));

export async function syncRecords(root: string, shelf: RecordShelf, opts: SyncOptions = {}): Promise<SyncReport> {
  const memo = opts.memo ?? newSyncMemo();
  const warn = opts.warn ?? ((line: string) => process.stderr.write(`warning: ${line}\n`));
  let trusted: TrustedRoot | null = null;
  if (opts.trustRoot) {
    if (memo.root?.bytes !== opts.trustRoot) memo.root = { bytes: opts.trustRoot, root: readSelfSignedRoot(opts.trustRoot, 'trust root') };
    trusted = memo.root.root;
  }
  const report: SyncReport = { fetched: [], removed: [], published: [], skipped: [], releases: 0, changed: false };
  await mkdir(envelopesDir(root), { recursive: true });
  if (!memo.md5Loaded) await loadMd5s(root, memo);
  const shared = await stat(sharedMarkerPath(root)).then(
    () => true,
    () => false,
  );

  const started = Date.now();
  const listing = await shelf.list(RECORDS_FOLDER);
  const onShelf = new Set<string>();
  for (const entry of listing) {
    const key = `${RECORDS_FOLDER}/${entry.name}`;
    const release = entry.name.endsWith('.json') ? entry.name.slice(0, -'.json'.length) : '';
    try {
      assertReleaseName(release);
    } catch {
      skip(key, entry.etag, 'not a release record name (releases/<release>.json)', null);
      continue;
    }
    onShelf.add(release);
    const local = await localIsCurrent(root, release, entry.etag, memo);
    if (local.current) {
      report.releases++;
      continue;
    }
    const refused = memo.refused.get(key);
    if (refused && refused.etag === entry.etag) {
      // this version was refused already: not fetched again, still reported
      report.skipped.push(refused.record);
      continue;
    }
    const got = await shelf.get(key);
    if (!got) {
      onShelf.delete(release); // removed since the listing
      continue;
    }
    let stored: StoredRelease;
    try {
      stored = admitRecord(got.bytes, release, trusted);
    } catch (e) {
      let claimed: StoredRelease | null = null;
      try {
        claimed = decodeStored(got.bytes, key);
      } catch {
        claimed = null;
      }
      skip(key, got.etag, reasonOf(e), claimed);
      continue;
    }
    const current = local.present ? await readFile(envelopePath(root, release)).catch(() => null) : null;
    if (!current || !current.equals(got.bytes)) {
      await writeEnvelopeFile(root, release, got.bytes);
      await writeOutline(root, stored);
      report.fetched.push(release);
    }
    await noteMatched(root, release, got.etag, memo);
    report.releases++;
  }

  let localOnly = 0;
  for (const release of await listEnvelopeFiles(root)) {
    if (onShelf.has(release)) continue;
    const path = envelopePath(root, release);
    const s = await stat(path).catch(() => null);
    if (!s) continue;
    if (!shared) {
      if (!opts.publish) {
        localOnly++;
        continue;
      }
      // staged here before records were shared: put it up, so that other nodes (and their gc) know it
      const bytes = await readFile(path);
      await shelf.put(releaseRecordKey(release), bytes);
      report.published.push(release);
      continue;
    }
    if (s.mtimeMs >= started - FRESH_MS) continue;
    await rm(path, { force: true });
    await removeOutline(root, release);
    memo.md5.delete(release);
    memo.matched.delete(release);
    memo.md5Changed = true;
    report.removed.push(release);
  }

  const acceptedChanged = await syncAccepted(root, shelf, memo, opts.publish === true, (key, etag, reason) => skip(key, etag, reason, null));

  // from now on the shelf is the whole truth: a local envelope without its record was removed elsewhere
  if (!shared && localOnly === 0) await writeFile(sharedMarkerPath(root), 'index/ follows the release records of the blob bucket\n');
  await saveMd5s(root, memo);
  report.changed = report.fetched.length + report.removed.length > 0 || acceptedChanged;
  if (opts.db && (report.changed || report.published.length > 0)) await reindexReleases(root, opts.db);
  return report;

  function skip(key: string, version: string, reason: string, claimed: StoredRelease | null): void {
    const record: SkippedRecord = { key, reason, claimed };
    report.skipped.push(record);
    if (memo.refused.get(key)?.etag === version) return;
    memo.refused.set(key, { etag: version, record });
    warn(`skipped ${shelf.where}${key}: ${reason}`, { key: `${shelf.where}${key}` });
  }
}

function readAcceptedRecord(bytes: Buffer, product: string): AcceptedSerial {
  const a = JSON.parse(bytes.toString('utf8')) as Partial<AcceptedSerial>;
  if (a.product !== product || !Number.isSafeInteger(a.serial) || (a.serial ?? -1) < 0 || !isDigest(a.digest)) {
    throw new AirlockError('EMANIFEST', `not an accepted serial of product "${product}" ({product, serial, digest})`, { product });
  }
  return { product, serial: a.serial!, digest: a.digest };
}

/** The shelf's accepted serials merged into index/accepted.json (and, for a writer, the local ones up); true when the local file changed. */
async function syncAccepted(
  root: string,
  shelf: RecordShelf,
  memo: SyncMemo,
  publish: boolean,
  skip: (key: string, etag: string, reason: string) => void,
): Promise<boolean> {
  const local = await readAcceptedFile(root);
  const fromShelf: Record<string, AcceptedSerial> = {};
  for (const entry of await shelf.list(ACCEPTED_FOLDER)) {
    const product = entry.name.endsWith('.json') ? entry.name.slice(0, -'.json'.length) : '';
    const key = `${ACCEPTED_FOLDER}/${entry.name}`;
    // a version already read: nothing to fetch
    const seen = memo.accepted.get(key);
    if (seen && seen.etag === entry.etag) {
      if (seen.value) fromShelf[product] = seen.value;
      continue;
    }
    const got = await shelf.get(key);
    if (!got) continue;
    try {
      const value = readAcceptedRecord(got.bytes, product);
      fromShelf[product] = value;
      memo.accepted.set(key, { etag: got.etag, value });
    } catch (e) {
      memo.accepted.set(key, { etag: got.etag, value: null });
      skip(key, got.etag, reasonOf(e));
    }
  }
  const merged = mergeAccepted(local, fromShelf);
  if (publish) {
    for (const a of Object.values(merged)) {
      const there = fromShelf[a.product];
      if (!there || there.serial < a.serial) await putAccepted(shelf, a);
    }
  }
  const changed = JSON.stringify(merged) !== JSON.stringify(mergeAccepted(local));
  if (changed) await writeAcceptedFile(root, merged);
  return changed;
}

/** Writes a product's accepted serial to the shelf, never lowering the one there. */
export async function putAccepted(shelf: RecordShelf, next: AcceptedSerial): Promise<void> {
  const key = acceptedRecordKey(next.product);
  const got = await shelf.get(key);
  if (got) {
    try {
      if (readAcceptedRecord(got.bytes, next.product).serial >= next.serial) return;
    } catch {
      // not readable: replaced by a good one
    }
  }
  await shelf.put(key, Buffer.from(`${JSON.stringify({ product: next.product, serial: next.serial, digest: next.digest })}\n`));
}
