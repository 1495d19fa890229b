/**
 * Bundle bytes on disk: one file, or numbered volumes (`FILE.tar.000`,
 * `.001`…) for removable media. Splitting cuts the byte stream of one tar,
 * so volumes are joined back by simple concatenation. Every volume gets a
 * sha256sum-compatible `VOLUME.sha256` beside it, for people (`sha256sum -c`
 * on the media before the trip). The importer reads it only when asked
 * (`--check-volumes`): every blob is verified against the signed envelope
 * anyway, and the header, roots and envelope are checked by the trust gate,
 * so the volume hash would be a second hash pass over the same bytes that
 * guards nothing more (a cut or damaged volume is still found, by the tar
 * reading or by the blob it hits). The reading side is tar-read.ts.
 */
import { existsSync } from 'node:fs';
import { open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { AirlockError } from '../../manifests/errors.js';
import { offThreadHash, type OffThreadHash } from '../support/hash-off-thread.js';

export const volumeName = (out: string, index: number): string => `${out}.${String(index).padStart(3, '0')}`;
export const checksumName = (file: string): string => `${file}.sha256`;

export interface WrittenVolume {
  path: string;
  bytes: number;
  sha256: string;
}

/**
 * Lands bytes in `out` (split = null) or in volumes of at most `split`
 * bytes. Files are written as `<name>.partial` and renamed when complete,
 * so a crashed export never leaves a volume that looks finished.
 *
 * One read, one write, one hash: `put(chunk)` queues a positional write
 * (libuv's pool) and copies the chunk into the hasher's ring (the volume
 * checksum runs on another core); it resolves when the chunk may be reused,
 * so a caller reading into a few buffers in turn keeps reads, writes and the
 * checksum going at once. Chunks are taken in call order.
 */
export class VolumeWriter {
  readonly volumes: WrittenVolume[] = [];
  private handle: FileHandle | null = null;
  private readonly hash: OffThreadHash = offThreadHash();
  private current = '';
  private used = 0;
  /** the writes of the current volume still in flight */
  private readonly inflight = new Set<Promise<void>>();
  private failure: Error | null = null;
  /** bytes written since the last background fdatasync was started */
  private unsynced = 0;
  private background: Promise<void> = Promise.resolve();
  /** put() calls take their place (position, volume, ring) one after another */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly out: string,
    private readonly split: number | null,
  ) {}

  /** Queues `chunk`; resolves once it is written (and hashed or copied for hashing): then it may be reused. */
  put(chunk: Buffer): Promise<void> {
    const placed = this.chain.then(() => this.place(chunk));
    this.chain = placed.then(
      () => {},
      (e: unknown) => {
        this.failure ??= e as Error;
      },
    );
    return placed.then((writes) => Promise.all(writes)).then(() => {
      if (this.failure) throw this.failure;
    });
  }

  /** Ends the last volume (an empty bundle still makes one empty file): fsync, rename, its .sha256. */
  async finish(): Promise<void> {
    try {
      await this.chain;
      if (this.failure) throw this.failure;
      if (!this.handle) await this.openNext();
      await this.closeCurrent();
    } finally {
      await this.hash.close();
    }
  }

  /** Removes whatever this writer created (after a failure). */
  async discard(): Promise<void> {
    await this.chain;
    await Promise.allSettled(this.inflight);
    await this.background;
    await this.hash.close();
    await this.handle?.close().catch(() => {});
    this.handle = null;
    const paths = [...this.volumes.map((v) => v.path), this.current].filter(Boolean);
    for (const p of paths) {
      await rm(p, { force: true });
      await rm(`${p}.partial`, { force: true });
      await rm(checksumName(p), { force: true });
    }
  }

  private async place(chunk: Buffer): Promise<Array<Promise<void>>> {
    if (this.failure) throw this.failure;
    const writes: Array<Promise<void>> = [];
    let off = 0;
    while (off < chunk.length) {
      if (!this.handle) await this.openNext();
      const room = this.split === null ? chunk.length - off : Math.min(chunk.length - off, this.split - this.used);
      const part = chunk.subarray(off, off + room);
      const handle = this.handle!;
      const w: Promise<void> = writeAll(handle, part, this.used)
        .catch((e: unknown) => {
          this.failure ??= e as Error;
        })
        .finally(() => this.inflight.delete(w));
      writes.push(w);
      this.inflight.add(w);
      await this.hash.update(part);
      this.used += part.length;
      this.unsynced += part.length;
      off += room;
      if (this.unsynced >= SYNC_EVERY) {
        // flush what is written so far while more is written, so the fsync at the end finds little to do
        this.unsynced = 0;
        const upTo = Promise.all(this.inflight);
        this.background = this.background
          .then(() => upTo)
          .then(() => handle.datasync())
          .catch((e: unknown) => {
            this.failure ??= e as Error;
          });
      }
      if (this.split !== null && this.used >= this.split) await this.closeCurrent();
    }
    return writes;
  }

  private async openNext(): Promise<void> {
    this.current = this.split === null ? this.out : volumeName(this.out, this.volumes.length);
    this.handle = await open(`${this.current}.partial`, 'w');
    this.used = 0;
    this.unsynced = 0;
  }

  private async closeCurrent(): Promise<void> {
    if (!this.handle) return;
    await Promise.all(this.inflight);
    await this.background;
    if (this.failure) throw this.failure;
    await this.handle.sync();
    await this.handle.close();
    this.handle = null;
    const sha256 = await this.hash.digest();
    await rename(`${this.current}.partial`, this.current);
    await writeFile(checksumName(this.current), `${sha256}  ${basename(this.current)}\n`);
    this.volumes.push({ path: this.current, bytes: this.used, sha256 });
  }
}

/**
 * A background fdatasync every this many bytes: the disk writes while more is
 * written, and the fsync at the end finds little left (export of 1 GiB:
 * 0.82-0.84 s at 16 MiB, 0.91-1.24 s at 64 MiB, 1.03-1.21 s with none).
 */
const SYNC_EVERY = 16 * 1024 * 1024;

async function writeAll(handle: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * What the operator named → the volumes to read, in order. `FILE.tar` when
 * it exists; else `FILE.tar.000`, `.001`… as far as they go; an explicit
 * list is taken as given (in that order).
 */
export function resolveVolumes(files: string[]): string[] {
  if (files.length === 0) throw new AirlockError('EUSAGE', 'import: name the bundle file (or its volumes in order)');
  if (files.length > 1) {
    for (const f of files) if (!existsSync(f)) throw new AirlockError('ENOTFOUND', `bundle volume ${f} does not exist`, { file: f });
    return files;
  }
  const [only] = files as [string];
  if (existsSync(only) && !/\.000$/.test(only)) return [only];
  const base = /\.000$/.test(only) ? only.slice(0, -4) : only;
  const found: string[] = [];
  while (existsSync(volumeName(base, found.length))) found.push(volumeName(base, found.length));
  if (found.length === 0) throw new AirlockError('ENOTFOUND', `bundle ${only} does not exist (nor ${volumeName(base, 0)})`, { file: only });
  return found;
}
