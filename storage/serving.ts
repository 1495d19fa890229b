/**
 * Who serves a cache folder, so that `airlock relocate` can hand running
 * servers over to the new folder before it removes the old one.
 *
 * `airlock serve` writes `CACHE/serving/<pid>.json` ({pid, start, cacheDir})
 * while it serves from CACHE, and removes it once it serves from elsewhere or
 * stops. `start` is the process's start time in clock ticks
 * (/proc/PID/stat field 22): a pid reused by another process never matches,
 * so a stale entry is never signalled.
 *
 * The hand-over (relocate, after the config switched): SIGHUP to every live
 * server of OLD; each re-reads its config (or OLD's relocate journal, which
 * names NEW), opens NEW, registers there and removes its entry in OLD.
 * Relocate waits for every entry to go (or its process to end) before it
 * removes OLD. Downloads in flight keep their open descriptors throughout.
 *
 * A move of the blobs between the filesystem and a bucket
 * (storage/relocate-storage.ts) may keep the folder: each entry also names
 * the blob storage it serves from (`storage`, see storageLabel), a server
 * re-registers once it serves from the new one, and the hand-over waits for
 * that instead of the entry going.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/atomic.js';
import type { StorageConfig } from './backend/select.js';

/** The relocate journal's name (storage/relocate.ts): in OLD with phase `switched`, it names the folder to follow. */
export const RELOCATE_JOURNAL = 'relocate.json';
export const SERVING_DIR = 'serving';

export const servingDir = (cacheDir: string): string => join(cacheDir, SERVING_DIR);
const entryPath = (cacheDir: string, pid: number): string => join(servingDir(cacheDir), `${pid}.json`);

export interface ServingEntry {
  pid: number;
  /** the process's start time in clock ticks since boot ('' where /proc is not there) */
  start: string;
  cacheDir: string;
  /** where its blobs come from (storageLabel); absent in entries of servers that predate it */
  storage?: string;
}

/** One line naming a blob storage, equal for equal configs: "fs", or "s3 ENDPOINT BUCKET/PREFIX/". */
export function storageLabel(storage: StorageConfig | undefined): string {
  if (!storage || storage.backend === 'fs') return 'fs';
  const s = storage.s3;
  const prefix = s.prefix.replace(/^\/+|\/+$/g, '');
  return `s3 ${s.endpoint ?? `aws:${s.region}`} ${s.bucket}/${prefix ? `${prefix}/` : ''}`;
}

/** Field 22 of /proc/PID/stat (after the command name, which may hold spaces and parentheses); '' when unknown. */
export function processStart(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** This process serves `cacheDir` (its blobs from `storage`) from now on; `release` says it no longer does. */
export async function registerServer(cacheDir: string, storage = 'fs'): Promise<{ release(): Promise<void> }> {
  const entry: ServingEntry = { pid: process.pid, start: processStart(process.pid), cacheDir, storage };
  await mkdir(servingDir(cacheDir), { recursive: true });
  await writeFileAtomic(entryPath(cacheDir, process.pid), `${JSON.stringify(entry)}\n`);
  return { release: () => rm(entryPath(cacheDir, process.pid), { force: true }) };
}

const alive = (e: ServingEntry): boolean => e.start !== '' && processStart(e.pid) === e.start;

/** The servers registered in `cacheDir` whose process still runs; entries of ended processes are removed. */
export async function liveServers(cacheDir: string): Promise<ServingEntry[]> {
  const out: ServingEntry[] = [];
  for (const name of await readdir(servingDir(cacheDir)).catch(() => [] as string[])) {
    if (!/^\d+\.json$/.test(name)) continue;
    const e = await readFile(join(servingDir(cacheDir), name), 'utf8')
      .then((t) => JSON.parse(t) as ServingEntry)
      .catch(() => null);
    if (e && Number.isInteger(e.pid) && typeof e.start === 'string' && alive(e)) out.push(e);
    else await rm(join(servingDir(cacheDir), name), { force: true });
  }
  return out;
}

/** Where OLD's relocate journal says the cache went, once the config was switched; null otherwise. */
export async function relocatedTo(cacheDir: string): Promise<string | null> {
  try {
    const j = JSON.parse(await readFile(join(cacheDir, RELOCATE_JOURNAL), 'utf8')) as { phase?: unknown; to?: unknown };
    return j.phase === 'switched' && typeof j.to === 'string' ? j.to : null;
  } catch {
    return null;
  }
}

export interface HandOverResult {
  /** servers that now serve from elsewhere (or ended) */
  moved: number[];
  /** servers still serving from the old folder when the wait ran out, or that could not be signalled */
  stuck: number[];
}

/**
 * SIGHUP to every live server of `from`, then waits (up to `waitMs`, default
 * 15 s) until each has left it, or (`storage` given: the blobs moved, the
 * folder stayed) serves its blobs from that storage. The caller removes the
 * old copy only when none is stuck.
 */
export async function handOverServers(from: string, opts: { waitMs?: number; storage?: string } = {}): Promise<HandOverResult> {
  const serving = async (): Promise<ServingEntry[]> =>
    (await liveServers(from)).filter((s) => opts.storage === undefined || s.storage !== opts.storage);
  const servers = await serving();
  const result: HandOverResult = { moved: [], stuck: [] };
  const waiting = new Set<number>();
  for (const s of servers) {
    if (s.pid === process.pid) continue;
    try {
      process.kill(s.pid, 'SIGHUP');
      waiting.add(s.pid);
    } catch {
      result.stuck.push(s.pid); // EPERM: another user's server; it keeps the old copy alive
    }
  }
  const deadline = Date.now() + (opts.waitMs ?? 15_000);
  while (waiting.size > 0) {
    const still = new Set((await serving()).map((s) => s.pid));
    for (const pid of [...waiting]) {
      if (!still.has(pid)) {
        waiting.delete(pid);
        result.moved.push(pid);
      }
    }
    if (waiting.size === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  result.stuck.push(...waiting);
  return result;
}
