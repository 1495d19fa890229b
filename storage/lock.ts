/**
 * One writer process per cache directory: proper-lockfile on `cache_dir`
 * (lock at `cache_dir/lock`, its mtime refreshed while we live). Beside it,
 * `lock.info` says who holds it, so a second writer can tell the operator.
 *
 * The node client takes the same lock on its state dir.
 *
 * A lock left by a SIGKILLed process is recovered two ways: proper-lockfile
 * treats it as stale once its mtime is `staleMs` old, and at once when
 * lock.info names a process on this host that no longer exists and the very
 * lock folder that process made (its inode and birth time are in lock.info),
 * so a lock someone else just acquired is never taken. A lock.info without
 * that identity (older versions) waits until the lock has not been refreshed
 * for a few update periods instead.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import lockfile from 'proper-lockfile';
import { AirlockError } from '../manifests/errors.js';
import { lockInfoPath, lockPath } from './paths.js';
import { writeFileAtomic } from '../common/atomic.js';

export interface LockInfo {
  pid: number;
  hostname: string;
  command: string;
  since: string;
  /** which lock folder this describes: a new one (same path, other holder) has another inode or birth time */
  lock?: LockIdentity;
}

interface LockIdentity {
  ino: number;
  birthtimeMs: number;
}

export interface WriterLock {
  readonly info: LockInfo;
  /** set when the lock was lost (mtime could not be refreshed, or it was taken over) */
  readonly compromised: Error | null;
  release(): Promise<void>;
}

export interface LockOptions {
  /** how long to wait for another writer (default 5 s) */
  waitMs?: number;
  /** a lock whose mtime is older than this is stale (default 10 s, minimum 5 s) */
  staleMs?: number;
  /** what to call us in lock.info (default: this process's argv) */
  command?: string;
  /** what the locked folder is, for the ELOCKED message (default "cache") */
  what?: string;
}

const UPDATE_MS = 1000;

export async function acquireWriterLock(cacheDir: string, opts: LockOptions = {}): Promise<WriterLock> {
  const waitMs = opts.waitMs ?? 5000;
  const stale = Math.max(opts.staleMs ?? 10_000, 5000);
  await mkdir(cacheDir, { recursive: true });
  const deadline = Date.now() + waitMs;
  let compromised: Error | null = null;
  for (;;) {
    await clearDeadHolder(cacheDir);
    try {
      const unlock = await lockfile.lock(cacheDir, {
        lockfilePath: lockPath(cacheDir),
        stale,
        update: UPDATE_MS,
        realpath: false,
        onCompromised: (e) => {
          compromised = e;
          process.stderr.write(`airlock: warning: the writer lock on ${cacheDir} was lost: ${e.message}\n`);
        },
      });
      const info: LockInfo = {
        pid: process.pid,
        hostname: hostname(),
        command: opts.command ?? process.argv.slice(1).join(' '),
        since: new Date().toISOString(),
        lock: await identityOf(lockPath(cacheDir)).catch(() => undefined),
      };
      // temp + rename: a reader never sees half of it, and a link planted at the name is replaced, not followed
      await writeFileAtomic(lockInfoPath(cacheDir), `${JSON.stringify(info)}\n`);
      let released = false;
      return {
        info,
        get compromised() {
          return compromised;
        },
        async release() {
          if (released) return;
          released = true;
          await rm(lockInfoPath(cacheDir), { force: true });
          if (!compromised) await unlock();
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ELOCKED') throw e;
      if (Date.now() >= deadline) throw await lockedError(cacheDir, waitMs, opts.what ?? 'cache');
      await new Promise((r) => setTimeout(r, Math.min(200, Math.max(1, deadline - Date.now()))));
    }
  }
}

export async function readLockInfo(cacheDir: string): Promise<LockInfo | null> {
  try {
    return JSON.parse(await readFile(lockInfoPath(cacheDir), 'utf8')) as LockInfo;
  } catch {
    return null;
  }
}

/** Is a writer holding this cache right now? (for readers that want to say so) */
export async function isLocked(cacheDir: string): Promise<boolean> {
  try {
    return await lockfile.check(cacheDir, { lockfilePath: lockPath(cacheDir), realpath: false, stale: 10_000 });
  } catch {
    return false;
  }
}

async function lockedError(cacheDir: string, waitMs: number, what: string): Promise<AirlockError> {
  const info = await readLockInfo(cacheDir);
  const who = info
    ? `pid ${info.pid} on ${info.hostname} ("${info.command}", since ${info.since})`
    : 'another process (no lock.info yet)';
  return new AirlockError(
    'ELOCKED',
    `${what} ${cacheDir} is locked by ${who}${waitMs > 0 ? `; waited ${Math.round(waitMs / 100) / 10} s` : ''} (lock: ${lockPath(cacheDir)})`,
    { cacheDir, holder: info },
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function identityOf(path: string): Promise<LockIdentity> {
  const s = await stat(path);
  return { ino: s.ino, birthtimeMs: s.birthtimeMs };
}

async function clearDeadHolder(cacheDir: string): Promise<void> {
  const info = await readLockInfo(cacheDir);
  if (!info || info.hostname !== hostname() || info.pid === process.pid || alive(info.pid)) return;
  try {
    const s = await stat(lockPath(cacheDir));
    // a filesystem without birth times reports 0: then only the age of the lock tells
    const same = info.lock !== undefined && info.lock.birthtimeMs > 0 && info.lock.ino === s.ino && info.lock.birthtimeMs === s.birthtimeMs;
    if (!same && Date.now() - s.mtimeMs < 3 * UPDATE_MS) return;
  } catch {
    return;
  }
  await rm(lockPath(cacheDir), { recursive: true, force: true });
  await rm(lockInfoPath(cacheDir), { force: true });
}
