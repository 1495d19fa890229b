/**
 * `airlock relocate NEW_DIR`: moves a live cache to another disk without
 * ever leaving the operator without one valid, complete cache that the
 * config points to.
 *
 * Phases, recorded in a journal (`relocate.json`, written atomically) in the
 * OLD cache_dir, and — from `verified` on — also in NEW_DIR:
 *
 *   copying   free space checked; files copied (temp + rename, so a copied
 *             file is always whole); config still → OLD
 *   verified  every blob in NEW hashed from the bytes it was copied from (read once)
 *             or, copied by an earlier run, read back; each fsynced; NEW's index
 *             rebuilt; config → OLD
 *   (switch)  the config's cache_dir rewritten atomically → NEW: the commit point
 *   switched  config → NEW; OLD is being removed (unless --keep-old)
 *
 * A SIGKILL anywhere leaves config → OLD with OLD intact (before the switch)
 * or config → NEW with NEW complete and verified (after it). Running the same
 * command again continues: before the switch it copies what is missing and
 * re-verifies; after it (config now says NEW_DIR) it finds NEW's journal and
 * finishes removing OLD.
 *
 * `airlock serve` only reads, and readers take no lock, so it keeps
 * answering from OLD during the copy. After the switch, every server
 * registered in OLD (storage/serving.ts) gets SIGHUP and moves to NEW; OLD is
 * removed only once none serves from it any more (a server that does not move
 * keeps OLD and its journal in place: run the command again once it is
 * restarted).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { AirlockError } from '../manifests/errors.js';
import { openStore } from './index.js';
import { acquireWriterLock } from './lock.js';
import { blobsRoot, isDigest, lockInfoPath, lockPath } from './paths.js';
import { writeFileAtomic } from '../common/atomic.js';
import { setConfigKey } from '../common/config-write.js';
import { offThreadHash } from './support/hash-off-thread.js';
import { copyAndHash } from './support/copy-hash.js';
import { freeDiskBytes } from './support/probe.js';
import { handOverServers, RELOCATE_JOURNAL, servingDir, type HandOverResult } from './serving.js';

export const JOURNAL_NAME = RELOCATE_JOURNAL;
export const journalPath = (cacheDir: string): string => join(cacheDir, JOURNAL_NAME);

export type RelocatePhase = 'copying' | 'verified' | 'switched';

export interface RelocateJournal {
  version: 1;
  /** absent: a folder move; "storage": a move of the blobs into a bucket or back (relocate-storage.ts) */
  kind?: undefined;
  phase: RelocatePhase;
  from: string;
  to: string;
  keepOld: boolean;
  /** the YAML file whose cache_dir is switched */
  configFile: string;
  started: string;
  updated: string;
}

/** Where a crash must leave one valid cache behind; tests stop (and SIGKILL) a run at each. */
export type RelocatePausePoint = 'copying' | 'verified' | 'switched' | 'removing';

export interface RelocateHooks {
  /** awaited at each pause point */
  pause?: (point: RelocatePausePoint) => Promise<void>;
}

export interface RelocateOptions {
  /** the cache_dir in use now (config/flags) */
  from: string;
  to: string;
  /** the YAML config to switch; created when it does not exist */
  configFile: string;
  keepOld?: boolean;
  lockWaitMs?: number;
  /** how long running servers get to move to NEW before OLD is removed (default 15 s) */
  handOverWaitMs?: number;
  onProgress?: (p: { phase: 'copy' | 'verify'; bytes: number; total: number; current: string }) => void;
  onNote?: (message: string) => void;
  hooks?: RelocateHooks;
}

export interface RelocateResult {
  from: string;
  to: string;
  configFile: string;
  /** what this run did: 'relocated', 'finished' (a previous run's removal), 'nothing' */
  outcome: 'relocated' | 'finished' | 'nothing';
  files: number;
  bytes: number;
  copied: { files: number; bytes: number };
  blobsVerified: number;
  oldRemoved: boolean;
  /** running `airlock serve` processes of OLD: moved to NEW, or still on OLD (which is then kept) */
  servers: HandOverResult;
}

/** Files that belong to one running process or to the move itself, never copied. */
const skipName = (cacheDir: string, abs: string): boolean =>
  abs === lockPath(cacheDir) ||
  abs.startsWith(lockPath(cacheDir) + sep) ||
  abs === lockInfoPath(cacheDir) ||
  abs === journalPath(cacheDir) ||
  abs === servingDir(cacheDir) ||
  abs.startsWith(servingDir(cacheDir) + sep) ||
  abs.endsWith('.relocating');

interface Item {
  rel: string;
  size: number;
  mode: number;
}

async function walk(root: string, dir = root, out: Item[] = []): Promise<Item[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw e;
  }
  for (const name of names.sort()) {
    const abs = join(dir, name);
    if (skipName(root, abs)) continue;
    const s = await stat(abs);
    if (s.isDirectory()) await walk(root, abs, out);
    else if (s.isFile()) out.push({ rel: relative(root, abs), size: s.size, mode: s.mode & 0o777 });
  }
  return out;
}

async function readJournal(cacheDir: string): Promise<RelocateJournal | null> {
  try {
    return JSON.parse(await readFile(journalPath(cacheDir), 'utf8')) as RelocateJournal;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new AirlockError('EUSAGE', `${journalPath(cacheDir)} cannot be read (${(e as Error).message}); inspect it and remove it to start over`);
  }
}

async function writeJournal(cacheDir: string, j: RelocateJournal): Promise<void> {
  await writeFileAtomic(journalPath(cacheDir), Buffer.from(`${JSON.stringify({ ...j, updated: new Date().toISOString() }, null, 2)}\n`));
}

async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

/** Removes OLD's content, the journal last, then the folder itself when it is not a mount point. */
export async function removeOld(from: string, pausePoint: (point: RelocatePausePoint) => Promise<void>): Promise<void> {
  for (const name of await readdir(from).catch(() => [] as string[])) {
    if (name === JOURNAL_NAME) continue;
    await rm(join(from, name), { recursive: true, force: true });
    await pausePoint('removing');
  }
  await rm(journalPath(from), { force: true });
  await rmdir(from).catch(() => {}); // a mount point or a non-empty dir stays: harmless
}

export async function relocate(opts: RelocateOptions): Promise<RelocateResult> {
  const from = resolve(opts.from);
  const to = resolve(opts.to);
  const configFile = resolve(opts.configFile);
  const note = opts.onNote ?? (() => {});
  const pausePoint = opts.hooks?.pause ?? (async () => {});
  const result: RelocateResult = {
    from,
    to,
    configFile,
    outcome: 'nothing',
    files: 0,
    bytes: 0,
    copied: { files: 0, bytes: 0 },
    blobsVerified: 0,
    oldRemoved: false,
    servers: { moved: [], stuck: [] },
  };
  const stuckNote = (old: string): void =>
    note(
      `airlock serve (pid ${result.servers.stuck.join(', ')}) still serves from ${old}, so it is kept: ` +
        `restart it (or send it SIGHUP), then run "airlock relocate ${to}" again to remove it`,
    );

  // ---- after the switch: the config already says NEW_DIR ----
  if (from === to) {
    const j = await readJournal(to);
    if (j && (j as { kind?: string }).kind === 'storage') {
      // a move of the blobs that kept this folder: its from is this very cache, never to be removed from here
      throw new AirlockError(
        'EUSAGE',
        `relocate: a move of the blobs of ${to} between the filesystem and a bucket is in progress (${journalPath(to)}); run that relocate again to finish it`,
        { to },
      );
    }
    if (!j) {
      note(`cache_dir is already ${to}; nothing to do`);
      return result;
    }
    result.from = j.from;
    if (existsSync(j.from)) {
      result.servers = await handOverServers(j.from, { waitMs: opts.handOverWaitMs });
      if (result.servers.stuck.length > 0) {
        stuckNote(j.from);
        result.outcome = 'finished';
        return result;
      }
    }
    if (!j.keepOld && existsSync(j.from)) {
      note(`finishing an earlier relocation: removing the old copy at ${j.from}`);
      await removeOld(j.from, pausePoint);
      result.oldRemoved = true;
    } else if (j.keepOld) {
      await rm(journalPath(j.from), { force: true });
    }
    await rm(journalPath(to), { force: true });
    result.outcome = 'finished';
    return result;
  }

  if (to.startsWith(from + sep) || from.startsWith(to + sep)) {
    throw new AirlockError('EUSAGE', `relocate: ${to} and ${from} are nested; pick a folder outside the cache`, { from, to });
  }
  if (!existsSync(from)) throw new AirlockError('ENOTFOUND', `relocate: the cache ${from} does not exist`, { from });
  const earlier = await readJournal(from);
  if (earlier && (earlier as { kind?: string }).kind === 'storage') {
    throw new AirlockError(
      'EUSAGE',
      `relocate: a move of the blobs of ${from} between the filesystem and a bucket is in progress (${journalPath(from)}); run that relocate again to finish it first`,
      { from, to, journal: earlier },
    );
  }
  if (earlier && earlier.to !== to) {
    throw new AirlockError(
      'EUSAGE',
      `relocate: a move of ${from} to ${earlier.to} is in progress (${journalPath(from)}); finish it with "airlock relocate ${earlier.to}" first`,
      { from, to, journal: earlier },
    );
  }
  if (!earlier && existsSync(to) && (await readdir(to)).length > 0 && !(await readJournal(to))) {
    // a leftover copy from a run killed before its first journal write is ours; anything else is not
    const marker = existsSync(join(to, 'blobs')) || existsSync(join(to, 'index'));
    if (!marker) throw new AirlockError('EUSAGE', `relocate: ${to} is not empty; give an empty or new folder`, { to });
  }

  const keepOld = opts.keepOld ?? earlier?.keepOld ?? false;
  const lock = await acquireWriterLock(from, { waitMs: opts.lockWaitMs, command: `airlock relocate ${to}` });
  try {
    const journal: RelocateJournal = earlier ?? {
      version: 1,
      phase: 'copying',
      from,
      to,
      keepOld,
      configFile,
      started: new Date().toISOString(),
      updated: '',
    };
    journal.keepOld = keepOld;

    // ---- copying ----
    const items = await walk(from);
    result.files = items.length;
    result.bytes = items.reduce((n, i) => n + i.size, 0);
    const todo: Item[] = [];
    for (const it of items) {
      const there = await stat(join(to, it.rel)).catch(() => null);
      if (!there || there.size !== it.size) todo.push(it);
    }
    const needed = todo.reduce((n, i) => n + i.size, 0);
    const { free } = await freeDiskBytes(to);
    // a little room for directories and the rebuilt index
    const margin = 4 * 1024 * 1024;
    if (needed + margin > free) {
      throw new AirlockError(
        'ENOSPACE',
        `relocate: ${to} has ${free} bytes free, the cache needs ${needed + margin} more (${needed} of files + ${margin} margin)`,
        { to, needed: needed + margin, free },
      );
    }
    await mkdir(to, { recursive: true });
    journal.phase = 'copying';
    await writeJournal(from, journal);
    // One read per blob: each is read once into the hashing worker's ring,
    // written to NEW from there and hashed there on the other core
    // (support/copy-hash.ts), then checked against its name, fdatasync'ed and
    // renamed into place. Other files (index, envelopes) are copied by the
    // kernel. Blobs an earlier run copied already are read back and hashed on
    // this thread meanwhile.
    const blobDir = relative(from, blobsRoot(from)) + sep;
    const isBlob = (it: Item): boolean => it.rel.startsWith(blobDir);
    const blobs = items.filter(isBlob);
    const blobTotal = blobs.reduce((n, i) => n + i.size, 0);
    const pending = new Set(todo.map((it) => it.rel));
    const ready: Item[] = blobs.filter((it) => !pending.has(it.rel)); // already copied by an earlier run
    let stop = false;
    let copiedBytes = 0;
    let verifiedBytes = 0;
    const worker = offThreadHash();

    const check = async (it: Item, file: string, found: { sha256: string; size: number }): Promise<void> => {
      const name = it.rel.split(sep).pop()!;
      if (isDigest(name) && (found.sha256 !== name || found.size !== it.size)) {
        await rm(file, { force: true }); // so the next run copies it again
        throw new AirlockError(
          'EINTEGRITY',
          `relocate: copy of blob sha256:${name} in ${to} reads back as ${found.size} bytes with sha256:${found.sha256}; removed it, run again`,
          { sha256: name, expected: { size: it.size }, found },
        );
      }
      verifiedBytes += it.size;
      result.blobsVerified++;
      opts.onProgress?.({ phase: 'verify', bytes: verifiedBytes, total: blobTotal, current: name });
    };

    // blobs copied and checked whose fdatasync + rename still run while the next ones are copied
    const settling: Array<Promise<void>> = [];
    const place = async (it: Item, temp: string, dest: string, durable: () => Promise<void>): Promise<void> => {
      await durable();
      await chmod(temp, it.mode);
      await rename(temp, dest);
      copiedBytes += it.size;
      result.copied.files++;
      opts.onProgress?.({ phase: 'copy', bytes: copiedBytes, total: needed, current: it.rel });
    };
    const copyAll = async (): Promise<void> => {
      try {
        for (const [n, it] of todo.entries()) {
          if (stop) return;
          const dest = join(to, it.rel);
          const temp = `${dest}.relocating`;
          await mkdir(dirname(dest), { recursive: true });
          if (isBlob(it)) {
            await rm(temp, { force: true }); // a killed run's leftover
            const copied = await copyAndHash(worker, join(from, it.rel), temp, it.mode);
            try {
              await check(it, temp, copied);
            } catch (e) {
              await copied.done().catch(() => {});
              await rm(temp, { force: true });
              throw e;
            }
            settling.push(place(it, temp, dest, () => copied.done()));
            if (settling.length >= 4) await settling.shift();
          } else {
            await copyFile(join(from, it.rel), temp);
            await place(it, temp, dest, async () => {});
          }
          if (n === Math.floor(todo.length / 2)) {
            while (settling.length > 0) await settling.shift();
            await pausePoint('copying');
          }
        }
      } finally {
        // every copy durable and in place before NEW is called verified
        const left = await Promise.allSettled(settling.splice(0));
        const failed = left.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw failed.reason;
      }
    };
    const verifyEarlier = async (): Promise<void> => {
      for (const it of ready) {
        if (stop) return;
        const dest = join(to, it.rel);
        await check(it, dest, await hashFile(dest));
      }
    };
    try {
      const jobs = [copyAll(), verifyEarlier()].map((p) =>
        p.catch((e: unknown) => {
          stop = true; // the other finishes what it is doing and returns
          throw e;
        }),
      );
      const settled = await Promise.allSettled(jobs);
      const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failure) throw failure.reason;
    } finally {
      await worker.close();
    }
    result.copied.bytes = copiedBytes;

    // the level files were copied as they were; rebuild NEW's index from its envelopes and blobs to be sure
    const fresh = await openStore({ cacheDir: to, write: true });
    try {
      await fresh.rebuildIndex();
    } finally {
      await fresh.close();
    }
    journal.phase = 'verified';
    await writeJournal(to, journal);
    await writeJournal(from, journal);
    await pausePoint('verified');

    // ---- the commit point ----
    await setConfigKey(configFile, 'cache_dir', to);
    await pausePoint('switched');
    journal.phase = 'switched';
    await writeJournal(to, journal);
    await writeJournal(from, journal);
  } finally {
    await lock.release().catch(() => {});
  }

  result.outcome = 'relocated';
  // running servers move to NEW before anything of OLD goes
  result.servers = await handOverServers(from, { waitMs: opts.handOverWaitMs });
  if (result.servers.stuck.length > 0) {
    stuckNote(from);
    return result; // both journals stay: the next run finishes
  }
  if (!keepOld) {
    await removeOld(from, pausePoint);
    result.oldRemoved = true;
  } else {
    await rm(journalPath(from), { force: true });
  }
  await rm(journalPath(to), { force: true });
  return result;
}
