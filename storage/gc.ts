/**
 * `airlock gc`: reclaims space under the writer lock.
 *
 * - blobs: reference counts across the kept releases (every artifact and
 *   every image blob, so layers shared by several images or releases stay
 *   while one kept release needs them); a blob no kept release needs goes.
 * - releases that are not kept leave the index first, so no stored release
 *   ever claims a blob that gc removed.
 * - partial downloads untouched for longer than a threshold, and quarantine.
 * - with blobs in a bucket shared by several cache nodes: the store synced
 *   the bucket's release records at open, so the counts are across every
 *   release of the bucket; a release gc removes leaves the bucket too; and a
 *   blob younger than the grace period is never collected (a stage on
 *   another node may have uploaded it before, or just after, its record).
 *
 * Serving stays safe: the backend opens a blob's file descriptor before a
 * read returns, and on POSIX an open descriptor outlives unlink, so a blob
 * being served while gc deletes it is still delivered whole.
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AirlockError } from '../manifests/errors.js';
import { releaseBlobs } from '../manifests/index.js';
import type { Store } from './index.js';
import { partialDir, quarantineDir } from './paths.js';

export const DEFAULT_PARTIAL_MAX_AGE_MS = 24 * 3600 * 1000;
/** gc's grace with blobs in a shared bucket (a backend with a record shelf); 0 on the filesystem, where the writer lock excludes a concurrent stage */
export const DEFAULT_SHARED_GRACE_MS = 3600 * 1000;

export interface GcOptions {
  /** releases to keep; default: every stored release */
  keep?: string[] | null;
  dryRun?: boolean;
  /** partial downloads older than this go (default 24 h) */
  partialOlderThanMs?: number;
  /** unreferenced blobs younger than this stay (default: 1 h with a shared bucket, 0 on the filesystem) */
  graceMs?: number;
  now?: Date;
}

export interface GcCount {
  count: number;
  bytes: number;
}

export interface GcReport {
  dryRun: boolean;
  releases: { kept: string[]; removed: string[] };
  /** `young`: unreferenced blobs kept because they are younger than `graceMs` (also counted in `kept`) */
  blobs: { kept: GcCount; deleted: GcCount; young: GcCount };
  graceMs: number;
  partial: GcCount;
  quarantine: GcCount;
  /** bytes freed (or that would be freed, with dryRun) */
  freed: number;
}


async function filesIn(dir: string): Promise<Array<{ path: string; size: number; mtimeMs: number }>> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: Array<{ path: string; size: number; mtimeMs: number }> = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    try {
      const s = await stat(path);
      if (s.isFile()) out.push({ path, size: s.size, mtimeMs: s.mtimeMs });
    } catch {
      // gone meanwhile: nothing to free
    }
  }
  return out;
}

export async function gc(store: Store, opts: GcOptions = {}): Promise<GcReport> {
  if (!store.writable) throw new AirlockError('EINTERNAL', 'gc needs a store opened for writing (the writer lock)');
  const dryRun = opts.dryRun ?? false;
  const now = (opts.now ?? new Date()).getTime();
  const maxAge = opts.partialOlderThanMs ?? DEFAULT_PARTIAL_MAX_AGE_MS;
  const shared = typeof store.backend.shelf === 'function';
  const graceMs = opts.graceMs ?? (shared ? DEFAULT_SHARED_GRACE_MS : 0);

  // a shared bucket: what every node staged, as of now (the store synced at open; records staged since are picked up here)
  const synced = await store.syncRecords();
  const releases = await store.listReleases();
  const names = new Set(releases.map((r) => r.release));
  const keep = opts.keep && opts.keep.length > 0 ? [...new Set(opts.keep)] : [...names];
  for (const k of keep) {
    if (!names.has(k)) {
      throw new AirlockError('ENOTFOUND', `--keep ${k}: no such release in ${store.cacheDir} (stored: ${[...names].sort().join(', ') || 'none'})`, {
        release: k,
      });
    }
  }
  const kept = releases.filter((r) => keep.includes(r.release));
  const removed = releases.filter((r) => !keep.includes(r.release)).map((r) => r.release);

  // reference counts: how many kept artifacts (across releases) need each blob
  const refs = new Map<string, number>();
  for (const r of kept) {
    for (const b of releaseBlobs(r.manifest)) refs.set(b.sha256, (refs.get(b.sha256) ?? 0) + b.paths.length);
  }
  // a record this node could not take (another trust root, damaged signatures) may still be a release another node serves: its blobs stay
  for (const s of synced?.skipped ?? []) {
    if (!s.claimed) continue;
    try {
      for (const b of releaseBlobs(s.claimed.manifest)) refs.set(b.sha256, (refs.get(b.sha256) ?? 0) + b.paths.length);
    } catch {
      // not a manifest at all: it claims nothing
    }
  }

  if (!dryRun && removed.length > 0) await store.removeReleases(removed);

  const report: GcReport = {
    dryRun,
    releases: { kept: kept.map((r) => r.release).sort(), removed: removed.sort() },
    blobs: { kept: { count: 0, bytes: 0 }, deleted: { count: 0, bytes: 0 }, young: { count: 0, bytes: 0 } },
    graceMs,
    partial: { count: 0, bytes: 0 },
    quarantine: { count: 0, bytes: 0 },
    freed: 0,
  };

  const doomed: string[] = [];
  for await (const digest of store.backend.list()) {
    const st = await store.backend.stat(digest);
    if (!st) continue;
    const young = !refs.has(digest) && now - st.mtimeMs < graceMs;
    if (young) {
      report.blobs.young.count++;
      report.blobs.young.bytes += st.size;
    }
    const bucket = refs.has(digest) || young ? report.blobs.kept : report.blobs.deleted;
    bucket.count++;
    bucket.bytes += st.size;
    if (!refs.has(digest) && !young) doomed.push(digest);
  }
  if (!dryRun) for (const d of doomed) await store.backend.delete(d);
  // the level index caches releases and blob records: make it match blobs/ and the envelopes again
  if (!dryRun && (removed.length > 0 || doomed.length > 0)) await store.rebuildIndex();

  for (const f of await filesIn(partialDir(store.cacheDir))) {
    if (now - f.mtimeMs < maxAge) continue;
    report.partial.count++;
    report.partial.bytes += f.size;
    if (!dryRun) await rm(f.path, { force: true });
  }
  for (const f of await filesIn(quarantineDir(store.cacheDir))) {
    report.quarantine.count++;
    report.quarantine.bytes += f.size;
    if (!dryRun) await rm(f.path, { force: true });
  }
  // a backend that quarantines elsewhere (an S3 bucket's quarantine/) empties its own
  const purge = (store.backend as { purgeQuarantine?: (dryRun: boolean) => Promise<{ count: number; bytes: number }> }).purgeQuarantine;
  if (purge) {
    const q = await purge.call(store.backend, dryRun);
    report.quarantine.count += q.count;
    report.quarantine.bytes += q.bytes;
  }
  report.freed = report.blobs.deleted.bytes + report.partial.bytes + report.quarantine.bytes;
  return report;
}
