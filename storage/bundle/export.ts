/**
 * `airlock export`: writes one release as a bundle (format.ts) — header,
 * root chain, signed envelope, then every blob in manifest order — streaming
 * each blob from the store into the tar, never holding one in memory.
 *
 * One read and one write per byte, no hash of the blobs (the store verified
 * each one when it got in; the importer verifies each again): blobs are read
 * into a few reused buffers that VolumeWriter writes while the next one is
 * read, and the volume checksum is computed once, on another core, as the
 * bytes are written. The tar headers are plain ustar, made here.
 */
import { close, read } from 'node:fs';
import { promisify } from 'node:util';
import { AirlockError } from '../../manifests/errors.js';
import { decodeEnvelope, releaseBlobs } from '../../manifests/index.js';
import type { Store } from '../index.js';
import {
  BUNDLE_FORMAT,
  BUNDLE_VERSION,
  ENVELOPE_NAME,
  HEADER_NAME,
  blobEntryName,
  rootEntryName,
  type BundleHeader,
} from './format.js';
import { VolumeWriter, type WrittenVolume } from './volumes.js';

export interface ExportOptions {
  /** FILE.tar; with `split`, volumes FILE.tar.000, .001… */
  out: string;
  /** bytes per volume, or null for one file */
  split?: number | null;
  /** root.json files (bytes) to carry, any order; duplicates by version are dropped */
  roots?: Buffer[];
  onProgress?: (p: { bytes: number; total: number; current: string }) => void;
}

export interface ExportResult {
  release: string;
  product: string;
  serial: number;
  blobs: number;
  /** blob bytes carried */
  bytes: number;
  roots: number[];
  volumes: WrittenVolume[];
}

/** Version of a root.json, read without verifying: the importer verifies it against its own root. */
function rootVersion(bytes: Buffer, index: number): number {
  try {
    const { payload } = decodeEnvelope(bytes);
    const v = (JSON.parse(payload.toString('utf8')) as { version?: unknown }).version;
    if (Number.isSafeInteger(v) && (v as number) >= 1) return v as number;
  } catch {
    // fall through to the one error below
  }
  throw new AirlockError('EMANIFEST', `export: trust root #${index + 1} is not a root.json with a version`, { index });
}

export async function exportBundle(store: Store, release: string, opts: ExportOptions): Promise<ExportResult> {
  const stored = await store.getRelease(release);
  if (!stored) throw new AirlockError('ENOTFOUND', `release ${release} is not in the cache at ${store.cacheDir}`, { release });
  const blobs = releaseBlobs(stored.manifest);

  // refuse before writing anything: a bundle must be complete to be useful
  const missing: typeof blobs = [];
  for (const b of blobs) {
    const st = await store.stat(b.sha256);
    if (!st || st.size !== b.size) missing.push(b);
  }
  if (missing.length > 0) {
    const first = missing[0]!;
    throw new AirlockError(
      'ENOTFOUND',
      `release ${release} is not complete: ${missing.length} blob(s) missing, first sha256:${first.sha256} for ${first.paths[0] ?? '?'} (run airlock stage)`,
      { release, missing: missing.map((m) => m.sha256) },
    );
  }

  const byVersion = new Map<number, Buffer>();
  (opts.roots ?? []).forEach((bytes, i) => byVersion.set(rootVersion(bytes, i), bytes));
  const roots = [...byVersion.keys()].sort((a, b) => a - b);

  const total = blobs.reduce((n, b) => n + b.size, 0);
  const header: BundleHeader = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    product: stored.product,
    release: stored.release,
    serial: stored.serial,
    digest: stored.digest,
    blobs: { count: blobs.length, bytes: total },
    roots,
    created: new Date().toISOString(),
  };

  const mtime = new Date(stored.manifest.issued);
  const writer = new VolumeWriter(opts.out, opts.split ?? null);
  // buffers in turn: one is read into while the others are written
  const pool = Array.from({ length: POOL }, () => Buffer.allocUnsafe(CHUNK));
  const busy: Array<Promise<void>> = pool.map(() => Promise.resolve());
  let turn = 0;
  const put = (chunk: Buffer): Promise<void> => {
    const p = writer.put(chunk);
    p.catch(() => {}); // awaited by the buffer's next turn or at the end
    return p;
  };
  const entry = async (name: string, size: number): Promise<void> => {
    await put(ustarHeader(name, size, mtime));
  };
  const pad = async (size: number): Promise<void> => {
    const rest = (BLOCK - (size % BLOCK)) % BLOCK;
    if (rest > 0) await put(ZEROS.subarray(0, rest));
  };
  const small = async (name: string, bytes: Buffer): Promise<void> => {
    await entry(name, bytes.length);
    await put(bytes);
    await pad(bytes.length);
  };

  let done = 0;
  const progress = (b: (typeof blobs)[number], n: number): void => {
    done += n;
    opts.onProgress?.({ bytes: done, total, current: b.paths[0] ?? b.sha256 });
  };
  const fromFd = async (b: (typeof blobs)[number], fd: number): Promise<void> => {
    for (let pos = 0; pos < b.size; ) {
      const i = turn++ % POOL;
      await busy[i];
      const buf = pool[i]!;
      const { bytesRead: n } = await readFd(fd, buf, 0, Math.min(CHUNK, b.size - pos), pos);
      if (n === 0) throw changed(b.sha256, b.size, pos);
      busy[i] = put(buf.subarray(0, n));
      pos += n;
      progress(b, n);
    }
  };
  const fromStream = async (b: (typeof blobs)[number]): Promise<void> => {
    let got = 0;
    for await (const chunk of await store.read(b.sha256)) {
      const c = chunk as Buffer;
      got += c.length;
      if (got > b.size) throw changed(b.sha256, b.size, got);
      await put(c); // a stream hands over fresh buffers: written before the next is asked for
      progress(b, c.length);
    }
    if (got !== b.size) throw changed(b.sha256, b.size, got);
  };

  try {
    await small(HEADER_NAME, Buffer.from(`${JSON.stringify(header, null, 2)}\n`));
    for (const v of roots) await small(rootEntryName(v), byVersion.get(v)!);
    await small(ENVELOPE_NAME, stored.envelope);
    for (const b of blobs) {
      await entry(blobEntryName(b.sha256), b.size);
      const opened = store.backend.open ? await store.backend.open(b.sha256) : null;
      if (opened) {
        try {
          if (opened.size !== b.size) throw changed(b.sha256, b.size, opened.size);
          await fromFd(b, opened.fd);
        } finally {
          await Promise.all(busy); // the reads are done; the fd is not written from, but keep the order simple
          await closeFd(opened.fd);
        }
      } else {
        await fromStream(b);
      }
      await pad(b.size);
    }
    await put(ZEROS); // end of archive: two zero blocks
    await Promise.all(busy);
    await writer.finish();
  } catch (e) {
    await Promise.allSettled(busy);
    await writer.discard();
    throw e;
  }
  return {
    release: stored.release,
    product: stored.product,
    serial: stored.serial,
    blobs: blobs.length,
    bytes: total,
    roots,
    volumes: writer.volumes,
  };
}

const BLOCK = 512;
const CHUNK = 1024 * 1024;
/** read buffers in turn: 4 MiB in all */
const POOL = 4;
/** padding and the end-of-archive blocks; never written to */
const ZEROS = Buffer.alloc(2 * BLOCK);
const readFd = promisify(read);
const closeFd = promisify(close);

function changed(sha256: string, size: number, found: number): AirlockError {
  return new AirlockError('EINTERNAL', `export: blob sha256:${sha256} changed while it was read (${found} bytes, the manifest says ${size})`, {
    sha256,
    size,
    found,
  });
}

const octal = (value: number, width: number): string => value.toString(8).padStart(width, '0');

/**
 * A ustar header for a regular file, mode 0444, uid/gid 0. Names fit the
 * 100-byte field (format.ts: the longest is blobs/sha256/<64 hex>, 77
 * bytes); a size of 8 GiB or more is written in base-256, as GNU tar and
 * tar-stream read it.
 */
export function ustarHeader(name: string, size: number, mtime: Date): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new AirlockError('EINTERNAL', `export: entry name ${name} is longer than 100 bytes`);
  h.write(name, 0, 'utf8');
  h.write(`${octal(0o444, 6)} \0`, 100, 'ascii');
  h.write(`${octal(0, 6)} \0`, 108, 'ascii');
  h.write(`${octal(0, 6)} \0`, 116, 'ascii');
  if (size < 8 ** 11) h.write(`${octal(size, 11)} `, 124, 'ascii');
  else {
    h[124] = 0x80;
    for (let i = 11, n = size; i > 0; i--, n = Math.floor(n / 256)) h[124 + i] = n % 256;
  }
  h.write(`${octal(Math.max(0, Math.floor(mtime.getTime() / 1000)), 11)} `, 136, 'ascii');
  h.write('0', 156, 'ascii'); // a regular file
  h.write('ustar\x0000', 257, 'latin1'); // POSIX magic and version
  h.write(`${octal(0, 6)} \0`, 329, 'ascii');
  h.write(`${octal(0, 6)} \0`, 337, 'ascii');
  h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(`${octal(sum, 6)}\0 `, 148, 'ascii');
  return h;
}
