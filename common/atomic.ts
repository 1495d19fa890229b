/**
 * The one way airlock replaces a small file (envelopes, serials, config,
 * keys, node state): write a temp file beside the target, fsync it, rename
 * (or link, when an existing file must never be replaced) over the target,
 * fsync the folder. After a crash a reader finds the old file or the new
 * one, whole; never half of either.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { link, mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** file mode of the new file (default 0644) */
  mode?: number;
  /** refuse to replace an existing file: fails with the system's EEXIST */
  exclusive?: boolean;
}

const tempBeside = (path: string): string => join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);

export async function writeFileAtomic(path: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = tempBeside(path);
  const h = await open(temp, 'wx', opts.mode ?? 0o644);
  try {
    await h.writeFile(data);
    await h.sync();
  } finally {
    await h.close();
  }
  try {
    if (opts.exclusive) await link(temp, path);
    else await rename(temp, path);
  } finally {
    await rm(temp, { force: true });
  }
  await syncDir(dirname(path));
}

/** The same, synchronous (the node client's small state files). */
export function writeFileAtomicSync(path: string, data: Uint8Array | string, opts: AtomicWriteOptions = {}): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = tempBeside(path);
  try {
    const fd = openSync(temp, 'wx', opts.mode ?? 0o644);
    try {
      writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } finally {
    rmSync(temp, { force: true });
  }
  syncDirSync(dirname(path));
}

export async function syncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r');
  try {
    await h.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the rename stays atomic anyway
  } finally {
    await h.close();
  }
}

export function syncDirSync(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // as above
  }
}
