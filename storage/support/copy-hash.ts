/**
 * Copies a file and hashes it in one read: each chunk is read once into a
 * slot of the hasher's ring (shared memory), written out from there, and
 * hashed from there by the worker on the other core. No second read of the
 * copy, no copy of the bytes between threads. (copy_file_range would copy
 * in the kernel, but then the bytes must be read back to be hashed.)
 *
 * The destination is opened exclusively (`wx`); `done()` fdatasyncs and
 * closes it, so a caller that renames it into place after checking the
 * digest and awaiting done() publishes a whole, durable file. done() may run
 * while the next file is copied (the fsync then overlaps the copying).
 */
import { open } from 'node:fs/promises';
import type { FileDigest, OffThreadHash } from './hash-off-thread.js';

export interface CopiedFile extends FileDigest {
  /** fdatasync and close the copy (call it once, after reading the digest) */
  done(): Promise<void>;
}

export async function copyAndHash(hasher: OffThreadHash, from: string, to: string, mode = 0o644): Promise<CopiedFile> {
  const src = await open(from, 'r');
  let dst;
  try {
    dst = await open(to, 'wx', mode);
  } catch (e) {
    await src.close();
    throw e;
  }
  // slots in flight: each is released once written and hashed
  const pending: Array<Promise<void>> = [];
  let failure: unknown = null;
  let size = 0;
  try {
    for (;;) {
      const { slot, buf } = await hasher.borrow();
      let n: number;
      try {
        ({ bytesRead: n } = await src.read(buf, 0, buf.length, size));
      } catch (e) {
        hasher.giveBack(slot);
        throw e;
      }
      if (n === 0) {
        hasher.giveBack(slot);
        break;
      }
      const at = size;
      size += n;
      const chunk = buf.subarray(0, n);
      const job = Promise.allSettled([writeAll(dst, chunk, at), hasher.hashSlot(slot, n)]).then(([w, h]) => {
        // a slot the worker never hashed stays out of the ring: the hasher is failing anyway
        if (h.status === 'fulfilled') hasher.giveBack(slot);
        if (w.status === 'rejected') failure ??= w.reason;
        else if (h.status === 'rejected') failure ??= h.reason;
      });
      pending.push(job);
      if (pending.length > 2) await pending.shift();
      if (failure) throw failure;
    }
    await Promise.all(pending);
    if (failure) throw failure;
    const sha256 = await hasher.digest();
    const out = dst;
    return {
      sha256,
      size,
      async done() {
        try {
          await out.datasync();
        } finally {
          await out.close().catch(() => {});
        }
      },
    };
  } catch (e) {
    await Promise.allSettled(pending);
    // the hasher must be ready for the next stream: drop what this one fed it
    await hasher.digest().catch(() => {});
    await dst.close().catch(() => {});
    throw e;
  } finally {
    await src.close().catch(() => {});
  }
}

async function writeAll(handle: Awaited<ReturnType<typeof open>>, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}
