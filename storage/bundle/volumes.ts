/**
 * Bundle bytes on disk: one file, or numbered volumes (`FILE.tar.000`,
 * `.001`…) for removable media. Splitting cuts the byte stream of one tar,
 * so volumes are joined back by simple concatenation. Every volume gets a
 * sha256sum-compatible `VOLUME.sha256` beside it; the reader checks each
 * volume against it when present (a transport check: every blob is also
 * verified by its own digest).
 */
import { createReadStream, existsSync } from 'node:fs';
import { open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { Readable, Writable } from 'node:stream';
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
 * A Writable that lands bytes in `out` (split = null) or in volumes of at
 * most `split` bytes. Files are written as `<name>.partial` and renamed when
 * complete, so a crashed export never leaves a volume that looks finished.
 */
export class VolumeWriter extends Writable {
  readonly volumes: WrittenVolume[] = [];
  private handle: FileHandle | null = null;
  /** the volume checksum runs on another core while this thread packs and writes */
  private readonly hash: OffThreadHash = offThreadHash();
  private current = '';
  private used = 0;

  constructor(
    private readonly out: string,
    private readonly split: number | null,
  ) {
    super({ highWaterMark: 4 * 1024 * 1024 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => cb(), (e: unknown) => cb(e as Error));
  }

  override _final(cb: (e?: Error | null) => void): void {
    // an empty stream still makes one (empty) file, so there is always a volume
    (this.handle ? Promise.resolve() : this.openNext())
      .then(() => this.closeCurrent())
      .finally(() => this.hash.close())
      .then(() => cb(), (e: unknown) => cb(e as Error));
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.hash.close().then(() => cb(err), () => cb(err));
  }

  /** Removes whatever this writer created (after a failure). */
  async discard(): Promise<void> {
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

  private async writeChunk(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      if (!this.handle) await this.openNext();
      const room = this.split === null ? chunk.length - off : Math.min(chunk.length - off, this.split - this.used);
      const part = chunk.subarray(off, off + room);
      // the write runs on libuv's pool, the checksum on the hasher's thread
      await Promise.all([writeAll(this.handle!, part), this.hash.update(part)]);
      this.used += part.length;
      off += room;
      if (this.split !== null && this.used >= this.split) await this.closeCurrent();
    }
  }

  private async openNext(): Promise<void> {
    this.current = this.split === null ? this.out : volumeName(this.out, this.volumes.length);
    this.handle = await open(`${this.current}.partial`, 'w');
    this.used = 0;
  }

  private async closeCurrent(): Promise<void> {
    if (!this.handle) return;
    await this.handle.sync();
    await this.handle.close();
    this.handle = null;
    const sha256 = await this.hash.digest();
    await rename(`${this.current}.partial`, this.current);
    await writeFile(checksumName(this.current), `${sha256}  ${basename(this.current)}\n`);
    this.volumes.push({ path: this.current, bytes: this.used, sha256 });
  }
}

async function writeAll(handle: FileHandle, buf: Buffer): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done);
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

/** Reads `VOLUME.sha256` (sha256sum format) when present. */
async function expectedChecksum(volume: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(checksumName(volume), 'utf8');
  } catch {
    return null;
  }
  const m = /^([0-9a-f]{64})\b/i.exec(text.trim());
  if (!m) throw new AirlockError('EINTEGRITY', `${checksumName(volume)}: not a sha256sum line`, { file: checksumName(volume) });
  return m[1]!.toLowerCase();
}

export interface VolumeReadProgress {
  /** bytes read across all volumes */
  bytes: number;
  volume: string;
}

/**
 * One Readable over all volumes in order, each checked against its .sha256
 * (when present) as it ends. The volume hash runs on another core
 * (hash-off-thread.ts, a few MiB of memory): on the main thread it doubled
 * the hashing an import does, since every blob is hashed here as well.
 */
export function readVolumes(volumes: string[], onBytes?: (p: VolumeReadProgress) => void): Readable {
  let total = 0;
  let hasher: OffThreadHash | null = null;
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      yield* volumeChunks();
    } finally {
      await hasher?.close();
    }
  }
  async function* volumeChunks(): AsyncGenerator<Buffer> {
    for (const volume of volumes) {
      const expected = await expectedChecksum(volume);
      const hash = expected === null ? null : (hasher ??= offThreadHash());
      try {
        for await (const chunk of createReadStream(volume, { highWaterMark: 1024 * 1024 })) {
          const buf = chunk as Buffer;
          if (hash) await hash.update(buf);
          total += buf.length;
          onBytes?.({ bytes: total, volume });
          yield buf;
        }
      } catch (e) {
        // a volume removed or unreadable mid-import (media pulled out): say which, as a missing part of the bundle
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EIO' || code === 'EACCES') {
          throw new AirlockError('EINTEGRITY', `bundle volume ${volume}: cannot be read (${code}); the bundle is incomplete`, { file: volume, cause: code });
        }
        throw e;
      }
      const found = hash ? await hash.digest() : null;
      if (expected !== null && found !== expected) {
        throw new AirlockError('EINTEGRITY', `bundle volume ${volume}: sha256 ${found} does not match ${checksumName(volume)} (${expected})`, {
          file: volume,
          expected,
          found,
        });
      }
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: 1024 * 1024 });
}
