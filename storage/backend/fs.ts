/**
 * The filesystem BlobBackend: blobs live under `cache_dir/blobs/sha256/ab/…`
 * (storage/paths.ts). A writer streams into a temp file under `partial/`
 * (opened with `wx`, never shared), hashes while streaming, and only a commit
 * whose digest AND size matched renames it into place, read-only. A blob that
 * is already there makes the commit a success: content is content.
 */
import { syncDir } from '../../common/atomic.js';
import { createHash } from 'node:crypto';
import { close, constants as fsc, fstat, open as openFd } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { AirlockError } from '../../manifests/errors.js';
import type { BlobRef } from '../../manifests/types.js';
import type { BlobBackend, BlobStat, BlobWriter, ByteRange, LocalBlobPath, OpenBlob } from '../types.js';
import { assertDigest, blobPath, blobRelativePath, blobsDir, blobsRoot, isDigest, partialDir, quarantineDir, quarantinePath, tempPath } from '../paths.js';

/** Big reads and writes: fewer syscalls and hash calls per GiB. */
export const CHUNK = 1024 * 1024;
/** positional writes in flight per writer */
const MAX_INFLIGHT = 4;
/** Flush written data to disk every this many bytes while hashing goes on, so commit's fsync finds little left to do. */
const SYNC_EVERY = 16 * 1024 * 1024;

const isNoEnt = (e: unknown): boolean => (e as NodeJS.ErrnoException)?.code === 'ENOENT';

export interface FsBlobBackend extends BlobBackend {
  readonly root: string;
  /** moves an already verified local file (same filesystem) into place; content-is-content */
  adopt(expected: BlobRef, file: string): Promise<void>;
  /** every digest in the store at once (parallel directory reads): what status uses at scale */
  listAll(): Promise<string[]>;
  /** moves a blob out of blobs/ into quarantine/, returns where it went */
  quarantine(digest: string): Promise<string>;
}

export function fsBackend(root: string): FsBlobBackend {
  return {
    root,
    async stat(digest: string): Promise<BlobStat | null> {
      try {
        const s = await stat(blobPath(root, digest));
        return { size: s.size, mtimeMs: s.mtimeMs };
      } catch (e) {
        if (isNoEnt(e)) return null;
        throw e;
      }
    },

    async read(digest: string, range?: ByteRange, opts?: { highWaterMark?: number }): Promise<Readable> {
      let handle: FileHandle;
      try {
        handle = await open(blobPath(root, digest), 'r');
      } catch (e) {
        if (isNoEnt(e)) throw new AirlockError('ENOTFOUND', `blob sha256:${digest} is not in the store`, { sha256: digest });
        throw e;
      }
      if (range) {
        const { size } = await handle.stat();
        if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end < range.start || range.end >= size) {
          await handle.close();
          throw new AirlockError('EUSAGE', `range ${range.start}-${range.end} is outside blob sha256:${digest} of ${size} bytes`, {
            sha256: digest,
            size,
            range,
          });
        }
      }
      return handle.createReadStream({ start: range?.start, end: range?.end, highWaterMark: opts?.highWaterMark ?? CHUNK, autoClose: true });
    },

    open(digest: string): Promise<OpenBlob | null> {
      // callbacks, not fs/promises: a FileHandle per response costs more than the open itself at thousands of small answers a second
      return new Promise((resolve, reject) => {
        openFd(blobPath(root, digest), 'r', (err, fd) => {
          if (err) return err.code === 'ENOENT' ? resolve(null) : reject(err);
          // fstat of that same descriptor: a stat by path and a later open could see two files
          fstat(fd, (e, st) => {
            if (e) close(fd, () => reject(e));
            else resolve({ fd, size: st.size });
          });
        });
      });
    },

    localPath(digest: string): LocalBlobPath {
      return { root: blobsDir(root), relative: blobRelativePath(digest) };
    },

    async writer(expected: BlobRef): Promise<BlobWriter> {
      return openWriter(root, expected);
    },

    async adopt(expected: BlobRef, file: string): Promise<void> {
      const target = blobPath(root, expected.sha256);
      if (await exists(target)) {
        await rm(file, { force: true });
        return;
      }
      await chmod(file, 0o444);
      await mkdir(dirname(target), { recursive: true });
      await rename(file, target);
      await syncDir(dirname(target));
    },

    async delete(digest: string): Promise<void> {
      await rm(blobPath(root, digest), { force: true });
    },

    async *list(): AsyncIterable<string> {
      const top = await readdirOrEmpty(blobsRoot(root));
      for (const prefix of top.sort()) {
        if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
        for (const name of (await readdirOrEmpty(`${blobsRoot(root)}/${prefix}`)).sort()) {
          if (isDigest(name) && name.startsWith(prefix)) yield name;
        }
      }
    },

    async listAll(): Promise<string[]> {
      const prefixes = (await readdirOrEmpty(blobsRoot(root))).filter((p) => /^[0-9a-f]{2}$/.test(p));
      const lists = await Promise.all(prefixes.map((p) => readdirOrEmpty(`${blobsRoot(root)}/${p}`)));
      return lists.flatMap((names, i) => names.filter((n) => n.length === 64 && n.startsWith(prefixes[i]!) && isDigest(n)));
    },

    async quarantine(digest: string): Promise<string> {
      const to = quarantinePath(root, digest);
      await mkdir(quarantineDir(root), { recursive: true });
      await rename(blobPath(root, digest), to);
      return to;
    },
  };
}

async function openWriter(root: string, expected: BlobRef): Promise<BlobWriter> {
  assertDigest(expected.sha256, 'blob writer');
  if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
    throw new AirlockError('EUSAGE', `blob writer: size ${expected.size} is not a byte count`, { ...expected });
  }
  await mkdir(partialDir(root), { recursive: true });
  const temp = tempPath(root, expected.sha256, randomBytes(6).toString('hex'));
  // wx: a temp file is ours alone; a collision is a bug, not something to overwrite
  const handle = await open(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
  const hash = createHash('sha256');
  let bytes = 0;
  // Positional writes, a few in flight while the next chunks are hashed:
  // hashing (main thread) and disk writes (libuv pool) overlap.
  const inflight: Array<Promise<void>> = [];
  let position = 0;
  let writeError: Error | null = null;
  let unsynced = 0;
  let background: Promise<void> = Promise.resolve();
  let closed = false;
  let done = false;

  const drainTo = async (max: number): Promise<void> => {
    while (inflight.length > max) await inflight.shift();
    if (writeError) throw writeError;
  };

  /** hashes `chunk` and queues its positional write; the promise settles when it is written */
  const take = (chunk: Buffer): Promise<void> => {
    hash.update(chunk);
    const p = writeAll(handle, chunk, position).catch((e: unknown) => {
      writeError ??= e as Error;
    });
    position += chunk.length;
    inflight.push(p);
    unsynced += chunk.length;
    if (unsynced >= SYNC_EVERY) {
      unsynced = 0;
      // one background fdatasync at a time, after the writes issued so far
      const upTo = Promise.all(inflight);
      background = background.then(() => upTo).then(() => handle.datasync()).catch((e: unknown) => {
        writeError ??= e as Error;
      });
    }
    return p;
  };

  const stream = new Writable({
    highWaterMark: 4 * CHUNK,
    write(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      if (bytes > expected.size) {
        cb(tooLong(expected, bytes));
        return;
      }
      take(chunk);
      drainTo(MAX_INFLIGHT - 1).then(
        () => cb(),
        (e: unknown) => cb(e as Error),
      );
    },
    final(cb) {
      drainTo(0)
        .then(() => background)
        .then(() => {
          if (writeError) throw writeError;
        })
        .then(
        () => cb(),
        (e: unknown) => cb(e as Error),
      );
    },
  });
  // errors surface at commit(); keep them from becoming unhandled events
  let streamError: Error | null = null;
  stream.on('error', (e) => {
    streamError ??= e;
  });

  const closeHandle = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await handle.close();
  };

  return {
    stream,
    async put(chunk: Buffer): Promise<void> {
      if (done || closed) throw new AirlockError('EINTERNAL', 'blob writer: put after commit or cancel');
      if (writeError) throw writeError;
      bytes += chunk.length;
      if (bytes > expected.size) throw tooLong(expected, bytes);
      const written = take(chunk);
      // settled writes need not be waited for again at the end
      if (inflight.length > 2 * MAX_INFLIGHT) await drainTo(MAX_INFLIGHT);
      await written;
      if (writeError) throw writeError;
    },
    async commit() {
      if (done) throw new AirlockError('EINTERNAL', 'blob writer used twice');
      done = true;
      try {
        if (!stream.writableFinished && !stream.destroyed) {
          await new Promise<void>((resolve, reject) => {
            stream.once('error', reject);
            stream.end(() => resolve());
          });
        }
        if (streamError) throw streamError;
        const found = hash.digest('hex');
        if (bytes !== expected.size || found !== expected.sha256) {
          throw new AirlockError(
            'EINTEGRITY',
            `blob sha256:${expected.sha256}: expected ${expected.size} bytes with that digest, got ${bytes} bytes with sha256:${found}`,
            { expected: { ...expected }, found: { sha256: found, size: bytes } },
          );
        }
        await handle.sync();
        await closeHandle();
        await fsBackend(root).adopt(expected, temp);
      } finally {
        await closeHandle().catch(() => {});
        await rm(temp, { force: true });
      }
    },
    async cancel() {
      if (done) return;
      done = true;
      stream.destroy();
      await drainTo(0).catch(() => {});
      await background;
      await closeHandle().catch(() => {});
      await rm(temp, { force: true });
    },
  };
}

export function tooLong(expected: BlobRef, bytes: number): AirlockError {
  return new AirlockError(
    'EINTEGRITY',
    `blob sha256:${expected.sha256}: more than the expected ${expected.size} bytes (cut at ${bytes})`,
    { expected: { ...expected }, found: { size: bytes, sha256: null } },
  );
}

/** FileHandle.write may write less than asked; loop until the chunk is down. */
async function writeAll(handle: FileHandle, chunk: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (e) {
    if (isNoEnt(e)) return false;
    throw e;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isNoEnt(e)) return [];
    throw e;
  }
}

/** A rename is durable only once its directory is synced. */
export { syncDir };
