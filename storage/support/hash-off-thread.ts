/**
 * A sha256 that runs on another core, while the main thread does the I/O:
 * export's volume checksum (computed once, as the bundle is written), the
 * optional volume check of import (--check-volumes), relocate's copies
 * (read once into a borrowed slot of the ring, written out from it and
 * hashed here: copy-hash.ts) and `airlock verify` (hashFile, one hasher per
 * core).
 *
 * Why this shape: the bytes travel through a small SharedArrayBuffer ring
 * (SLOTS × SLOT bytes, copied in with one memcpy), never as posted Buffers:
 * posting a 1 MiB Buffer per chunk made the worker allocate and collect a
 * GiB of ArrayBuffers and cost ~40 MiB of resident memory; the ring keeps
 * the worker's heap flat. One stream at a time per hasher (update… digest).
 */
import { Worker } from 'node:worker_threads';
import { AirlockError } from '../../manifests/errors.js';

const SLOT = 1024 * 1024;
const SLOTS = 4;

// CommonJS, evaluated: no file to locate next to dist/ or the TS sources
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const ring = Buffer.from(workerData.ring);
let hash = null;
let fileBuf = null;
function hashFile(path) {
  fileBuf ??= Buffer.allocUnsafe(${SLOT});
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  let size = 0;
  try {
    for (let n; (n = readSync(fd, fileBuf, 0, fileBuf.length, null)) > 0; size += n) h.update(fileBuf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return { sha256: h.digest('hex'), size };
}
parentPort.on('message', (m) => {
  if (m.op === 'file') {
    try {
      parentPort.postMessage({ op: 'file', ...hashFile(m.path) });
    } catch (e) {
      parentPort.postMessage({ op: 'file', error: String(e && e.message || e), code: e && e.code });
    }
  } else if (m.op === 'update') {
    (hash ??= createHash('sha256')).update(ring.subarray(m.off, m.off + m.len));
    parentPort.postMessage({ op: 'free', slot: m.slot });
  } else {
    const hex = (hash ?? createHash('sha256')).digest('hex');
    hash = null;
    parentPort.postMessage({ op: 'digest', hex });
  }
});
`;

type FromWorker =
  | { op: 'free'; slot: number }
  | { op: 'digest'; hex: string }
  | { op: 'file'; sha256?: string; size?: number; error?: string; code?: string };

export interface FileDigest {
  sha256: string;
  size: number;
}

export interface OffThreadHash {
  /** copies `chunk` into the ring and returns once it is queued (waits while the ring is full) */
  update(chunk: Uint8Array): Promise<void>;
  /** sha256 hex of everything since the last digest; the hasher is then ready for the next stream */
  digest(): Promise<string>;
  /**
   * sha256 and size of a whole file, read by the worker itself (nothing
   * crosses threads but the path): relocation verifies copies this way on
   * one core while the main thread verifies others. Not while a stream is open.
   */
  hashFile(path: string): Promise<FileDigest>;
  /**
   * A slot of the ring to fill in place (e.g. read a file into it), so the
   * bytes are never copied again: hand it to hashSlot, use it meanwhile
   * (write it out), then giveBack. Waits while every slot is in use.
   */
  borrow(): Promise<{ slot: number; buf: Buffer }>;
  /** hashes the first `len` bytes of a borrowed slot (next in the stream); resolves once hashed (the slot is still borrowed) */
  hashSlot(slot: number, len: number): Promise<void>;
  /** returns a borrowed slot to the ring */
  giveBack(slot: number): void;
  /** stops the worker (idempotent) */
  close(): Promise<void>;
}

export function offThreadHash(): OffThreadHash {
  const ring = new SharedArrayBuffer(SLOT * SLOTS);
  const view = Buffer.from(ring);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { ring },
    // the worker only hashes views of the ring: a tiny heap is plenty
    resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1 },
  });
  worker.unref();
  const free: number[] = Array.from({ length: SLOTS }, (_, i) => i);
  let waitingForSlot: (() => void) | null = null;
  let waitingForDigest: { resolve: (hex: string) => void; reject: (e: Error) => void } | null = null;
  const waitingForFile: Array<{ path: string; resolve: (d: FileDigest) => void; reject: (e: Error) => void }> = [];
  // borrowed slots being hashed: the worker's "free" resolves the borrower instead of freeing the slot
  const hashing = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  let failed: Error | null = null;
  let closed = false;

  const fail = (e: Error): void => {
    failed ??= new AirlockError('EINTERNAL', `sha256 worker stopped: ${e.message}`, {}, { cause: e });
    waitingForSlot?.();
    waitingForDigest?.reject(failed);
    waitingForDigest = null;
    for (const w of waitingForFile.splice(0)) w.reject(failed);
    for (const h of hashing.values()) h.reject(failed);
    hashing.clear();
  };
  const release = (s: number): void => {
    free.push(s);
    const wake = waitingForSlot;
    waitingForSlot = null;
    wake?.();
  };
  worker.on('message', (m: FromWorker) => {
    if (m.op === 'free') {
      const h = hashing.get(m.slot);
      if (h) {
        hashing.delete(m.slot);
        h.resolve();
      } else release(m.slot);
    } else if (m.op === 'file') {
      const w = waitingForFile.shift();
      if (m.error === undefined) w?.resolve({ sha256: m.sha256!, size: m.size! });
      else {
        const e = Object.assign(new Error(`${w?.path}: ${m.error}`), { code: m.code });
        w?.reject(e);
      }
    } else {
      const w = waitingForDigest;
      waitingForDigest = null;
      w?.resolve(m.hex);
    }
  });
  worker.on('error', fail);
  worker.on('exit', (code) => {
    if (!closed) fail(new Error(`exited with ${code}`));
  });

  const slot = async (): Promise<number> => {
    while (free.length === 0 && !failed) await new Promise<void>((r) => (waitingForSlot = r));
    if (failed) throw failed;
    return free.shift()!;
  };

  return {
    async update(chunk) {
      for (let off = 0; off < chunk.length; off += SLOT) {
        const part = chunk.subarray(off, Math.min(chunk.length, off + SLOT));
        const s = await slot();
        view.set(part, s * SLOT);
        worker.postMessage({ op: 'update', slot: s, off: s * SLOT, len: part.length });
      }
    },
    digest() {
      if (failed) return Promise.reject(failed);
      return new Promise<string>((resolve, reject) => {
        waitingForDigest = { resolve, reject };
        worker.postMessage({ op: 'digest' });
      });
    },
    hashFile(path) {
      if (failed) return Promise.reject(failed);
      return new Promise<FileDigest>((resolve, reject) => {
        waitingForFile.push({ path, resolve, reject });
        worker.postMessage({ op: 'file', path });
      });
    },
    async borrow() {
      const s = await slot();
      return { slot: s, buf: view.subarray(s * SLOT, (s + 1) * SLOT) };
    },
    hashSlot(s, len) {
      if (failed) return Promise.reject(failed);
      return new Promise<void>((resolve, reject) => {
        hashing.set(s, { resolve, reject });
        worker.postMessage({ op: 'update', slot: s, off: s * SLOT, len });
      });
    },
    giveBack(s) {
      release(s);
    },
    async close() {
      if (closed) return;
      closed = true;
      await worker.terminate();
    },
  };
}
