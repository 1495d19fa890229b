/**
 * The importer's reading of a bundle: the volumes one after another
 * (VolumeReader) and the tar entries in them (TarReader), read once into a
 * few reused 1 MiB buffers. A blob's bytes are handed on as views of those
 * buffers; whoever takes one returns a promise, and the buffer is read into
 * again only once every such promise settled (the blob writer's put: its
 * write is done). Nothing is allocated per chunk, so a GiB bundle costs the
 * garbage collector nothing and memory stays flat.
 *
 * Only what an airlock bundle holds is understood: ustar (and GNU) headers,
 * pax and GNU long-name records applied to the next entry, zero blocks at
 * the end. Which entries are acceptable is import.ts's business.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { AirlockError } from '../../manifests/errors.js';
import { offThreadHash, type OffThreadHash } from '../support/hash-off-thread.js';
import { checksumName } from './volumes.js';

const BLOCK = 512;
const CHUNK = 1024 * 1024;
/** buffers in turn: one read into while the others' bytes are being written */
const POOL = 6;
/** a pax or GNU long-name record bigger than this is not ours */
const META_MAX = 64 * 1024;

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

/**
 * The volumes' bytes in order, as one. With `check`, each volume is checked
 * against its .sha256 (when present) before a byte of the next is returned;
 * that hash runs on another core. A volume that cannot be read is
 * EINTEGRITY naming it.
 */
export class VolumeReader {
  private index = -1;
  private handle: FileHandle | null = null;
  private expected: string | null = null;
  private hasher: OffThreadHash | null = null;
  private done = false;
  /** bytes read across all volumes */
  bytes = 0;

  constructor(
    private readonly volumes: string[],
    private readonly check: boolean,
  ) {}

  /** Up to `len` bytes into `buf` at `off`; 0 once every volume is read. */
  async read(buf: Buffer, off: number, len: number): Promise<number> {
    while (!this.done) {
      if (!this.handle && !(await this.openNext())) return 0;
      const volume = this.volumes[this.index]!;
      let n: number;
      try {
        ({ bytesRead: n } = await this.handle!.read(buf, off, len, null));
      } catch (e) {
        throw unreadable(volume, e);
      }
      if (n > 0) {
        if (this.expected !== null) await this.hasher!.update(buf.subarray(off, off + n));
        this.bytes += n;
        return n;
      }
      await this.endVolume(volume);
    }
    return 0;
  }

  async close(): Promise<void> {
    this.done = true;
    await this.handle?.close().catch(() => {});
    this.handle = null;
    await this.hasher?.close();
  }

  private async openNext(): Promise<boolean> {
    if (++this.index >= this.volumes.length) {
      this.done = true;
      return false;
    }
    const volume = this.volumes[this.index]!;
    this.expected = this.check ? await expectedChecksum(volume) : null;
    if (this.expected !== null) this.hasher ??= offThreadHash();
    try {
      this.handle = await open(volume, 'r');
    } catch (e) {
      throw unreadable(volume, e);
    }
    return true;
  }

  private async endVolume(volume: string): Promise<void> {
    await this.handle!.close().catch(() => {});
    this.handle = null;
    if (this.expected === null) return;
    const found = await this.hasher!.digest();
    if (found !== this.expected) {
      throw new AirlockError('EINTEGRITY', `bundle volume ${volume}: sha256 ${found} does not match ${checksumName(volume)} (${this.expected})`, {
        file: volume,
        expected: this.expected,
        found,
      });
    }
  }
}

function unreadable(volume: string, e: unknown): unknown {
  // a volume removed or unreadable mid-import (media pulled out): say which, as a missing part of the bundle
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EIO' || code === 'EACCES') {
    return new AirlockError('EINTEGRITY', `bundle volume ${volume}: cannot be read (${code}); the bundle is incomplete`, { file: volume, cause: code });
  }
  return e;
}

export interface TarHeader {
  name: string;
  /** as tar-stream names them: 'file', 'symlink', 'link', 'directory'…, or null for an unknown flag */
  type: string | null;
  size: number;
}

const TYPES: Record<number, string> = {
  0: 'file',
  1: 'link',
  2: 'symlink',
  3: 'character-device',
  4: 'block-device',
  5: 'directory',
  6: 'fifo',
  7: 'contiguous-file',
};

/** The input ended inside a header, a body or the padding after one. */
export class TarEnded extends Error {
  constructor(
    readonly where: 'header' | 'body' | 'padding',
    readonly got = 0,
  ) {
    super('Unexpected end of data');
  }
}

/** A header that is not a tar header (tar-stream's words, which import.ts maps to EMANIFEST). */
export class TarHeaderError extends Error {}

export class TarReader {
  private readonly bufs = Array.from({ length: POOL }, () => Buffer.allocUnsafeSlow(CHUNK));
  private readonly pinned: Array<Array<Promise<unknown>>> = Array.from({ length: POOL }, () => []);
  private cur = POOL - 1;
  private pos = 0;
  private end = 0;
  private eof = false;
  /** padding still to skip after the last body */
  private padding = 0;

  constructor(private readonly src: VolumeReader) {}

  /** The next entry's header; null at the end of the archive (the input ends on a block boundary). */
  async next(): Promise<TarHeader | null> {
    if (this.padding > 0) {
      const want = this.padding;
      this.padding = 0;
      if ((await this.skip(want)) < want) throw new TarEnded('padding');
    }
    let longName: string | null = null;
    let paxName: string | null = null;
    let paxSize: number | null = null;
    for (;;) {
      const block = await this.take(BLOCK);
      if (block.length === 0) return null;
      if (block.length < BLOCK) throw new TarEnded('header', block.length);
      const h = decodeHeader(block);
      if (h === null) continue; // a zero block: the end of the archive, or padding before more
      if (h.flag === 'x'.charCodeAt(0) || h.flag === 'g'.charCodeAt(0) || h.flag === 'L'.charCodeAt(0) || h.flag === 'K'.charCodeAt(0)) {
        if (h.size > META_MAX) throw new TarHeaderError(`Invalid tar header: a ${String.fromCharCode(h.flag)} record of ${h.size} bytes`);
        const body = await this.take(h.size);
        if (body.length < h.size) throw new TarEnded('body', body.length);
        const pad = (BLOCK - (h.size % BLOCK)) % BLOCK;
        if ((await this.skip(pad)) < pad) throw new TarEnded('padding');
        if (h.flag === 'L'.charCodeAt(0)) longName = body.toString('utf8').replace(/\0.*$/s, '');
        else if (h.flag === 'x'.charCodeAt(0)) {
          const pax = parsePax(body);
          if (pax.path !== undefined) paxName = pax.path;
          if (pax.size !== undefined) paxSize = Number(pax.size);
        }
        continue;
      }
      return { name: paxName ?? longName ?? h.name, type: h.type, size: paxSize ?? h.size };
    }
  }

  /** A small entry's whole body (the caller checked its size); fewer bytes when the input ends. */
  async small(size: number): Promise<Buffer> {
    const body = await this.take(size);
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    return body;
  }

  /**
   * Hands the body of `size` bytes to `take` as views of the read buffers,
   * in order. A promise that `take` returns pins the buffer until it
   * settles. Returns the bytes handed on (fewer than `size` when the input
   * ends). A rejection of `take`'s promise is the caller's to see.
   */
  async body(size: number, take: (chunk: Buffer) => Promise<unknown> | void): Promise<number> {
    let got = 0;
    while (got < size) {
      if (!(await this.fill())) break;
      const n = Math.min(size - got, this.end - this.pos);
      const chunk = this.bufs[this.cur]!.subarray(this.pos, this.pos + n);
      this.pos += n;
      got += n;
      const p = take(chunk);
      if (p) {
        p.catch(() => {});
        this.pinned[this.cur]!.push(p);
      }
    }
    this.padding = got === size ? (BLOCK - (size % BLOCK)) % BLOCK : 0;
    return got;
  }

  /** Settles every pinned buffer (before the caller gives up). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.pinned.flat());
  }

  private async fill(): Promise<boolean> {
    if (this.pos < this.end) return true;
    if (this.eof) return false;
    const k = (this.cur + 1) % POOL;
    const pins = this.pinned[k]!;
    if (pins.length > 0) {
      await Promise.allSettled(pins);
      pins.length = 0;
    }
    const n = await this.src.read(this.bufs[k]!, 0, CHUNK);
    if (n === 0) {
      this.eof = true;
      return false;
    }
    this.cur = k;
    this.pos = 0;
    this.end = n;
    return true;
  }

  /** `n` bytes copied out (fewer at the end of the input) */
  private async take(n: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n && (await this.fill())) {
      const k = Math.min(n - got, this.end - this.pos);
      this.bufs[this.cur]!.copy(out, got, this.pos, this.pos + k);
      this.pos += k;
      got += k;
    }
    return got === n ? out : out.subarray(0, got);
  }

  private async skip(n: number): Promise<number> {
    let got = 0;
    while (got < n && (await this.fill())) {
      const k = Math.min(n - got, this.end - this.pos);
      this.pos += k;
      got += k;
    }
    return got;
  }
}

function decodeHeader(b: Buffer): { name: string; type: string | null; size: number; flag: number } | null {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  if (sum === 8 * 32) return null; // all zeros
  if (sum !== octal(b, 148, 8)) throw new TarHeaderError('Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?');
  const magic = b.toString('latin1', 257, 263);
  const ustar = magic === 'ustar\0';
  const gnu = magic === 'ustar ' && b.toString('latin1', 263, 265) === ' \0';
  if (!ustar && !gnu) throw new TarHeaderError('Invalid tar header: unknown format.');
  let name = str(b, 0, 100);
  if (ustar && b[345] !== 0) name = `${str(b, 345, 155)}/${name}`;
  const flag = b[156] === 0 ? 48 : b[156]!;
  let type = TYPES[flag - 48] ?? null;
  if (type === 'file' && name.endsWith('/')) type = 'directory';
  return { name, type, size: size(b), flag };
}

const str = (b: Buffer, off: number, len: number): string => {
  const z = b.indexOf(0, off);
  return b.toString('utf8', off, z < 0 || z > off + len ? off + len : z);
};

function octal(b: Buffer, off: number, len: number): number {
  const text = b.toString('latin1', off, off + len).replace(/\0.*$/s, '').trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/** size: octal, or base-256 (first byte 0x80) for 8 GiB and more */
function size(b: Buffer): number {
  if (b[124]! & 0x80) {
    if (b[124] !== 0x80) throw new TarHeaderError('Invalid tar header: a negative size');
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + b[i]!;
    return n;
  }
  return octal(b, 124, 12);
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    const sp = body.indexOf(0x20, at);
    if (sp < 0) break;
    const len = Number(body.toString('latin1', at, sp));
    if (!Number.isSafeInteger(len) || len <= 0 || at + len > body.length) break;
    const rec = body.toString('utf8', sp + 1, at + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    at += len;
  }
  return out;
}
