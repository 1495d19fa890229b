/**
 * Streams a byte range of an open file to an HTTP response, with buffers
 * that are reused instead of allocated.
 *
 * Why not `fs.createReadStream(…).pipe(res)`: a read stream allocates a
 * fresh buffer per chunk, which the kernel must map and zero (page faults)
 * and V8 frees only at a later GC. Serving a GiB that way costs about three
 * times the CPU of reading it into a reused buffer, and its garbage is what
 * made RSS climb under load. Here a response holds at most two chunks: one
 * being written while the next is read (so disk and socket overlap), and a
 * chunk goes back to a shared pool once its socket write has completed. The
 * chunk size shrinks as more responses run at once, so the memory of all
 * bodies in flight stays near BUDGET whatever the concurrency.
 */
import { close, read } from 'node:fs';
import type { ServerResponse } from 'node:http';

/** bytes of body buffers that all responses in flight may hold together (and the pool may keep idle) */
export const BUDGET = 32 * 1024 * 1024;
export const MAX_CHUNK = 1024 * 1024;
export const MIN_CHUNK = 64 * 1024;

const pool = new Map<number, Buffer[]>();
let pooledBytes = 0;
let active = 0;

function take(size: number): Buffer {
  const b = pool.get(size)?.pop();
  if (b) {
    pooledBytes -= size;
    return b;
  }
  return Buffer.allocUnsafeSlow(size);
}

function give(b: Buffer): void {
  if (pooledBytes + b.length > BUDGET) return; // let GC have it
  let list = pool.get(b.length);
  if (!list) pool.set(b.length, (list = []));
  list.push(b);
  pooledBytes += b.length;
}

/** power-of-two chunk: two per response within BUDGET, no larger than the body needs */
function chunkSize(length: number): number {
  let size = MAX_CHUNK;
  while (size > MIN_CHUNK && (size * 2 * active > BUDGET || size / 2 >= length)) size /= 2;
  return size;
}

/** for tests and diagnostics */
export const pumpStats = (): { active: number; pooledBytes: number } => ({ active, pooledBytes });

const noop = (): void => {};

/**
 * Sends bytes [start, end) of `fd` as the body of `res` (whose head the
 * caller has set) and ends it. Takes ownership of `fd`: it is closed once no
 * read is in flight, after the last byte was handed to the socket or the
 * client went away. A read error or a file shorter than promised destroys
 * the response (the client sees a short body, never wrong bytes).
 */
export function pumpFile(fd: number, start: number, end: number, res: ServerResponse): void {
  active++;
  const size = chunkSize(end - start);
  const free: Buffer[] = [take(size)];
  if (end - start > size) free.push(take(size));
  let readPos = start;
  let sentPos = start;
  let reading = false;
  let writing = false;
  let queued: Buffer | null = null;
  let queuedLen = 0;
  let stopped = false;
  let closed = false;

  const release = (b: Buffer): void => {
    if (closed) give(b);
    else free.push(b);
  };

  const finishIfIdle = (): void => {
    if (closed || reading || (!stopped && sentPos < end)) return;
    closed = true;
    active--;
    res.off('close', onClose);
    close(fd, noop);
    for (const b of free) give(b);
    free.length = 0;
    if (queued) give(queued);
    queued = null;
  };

  const stop = (err?: Error | null): void => {
    if (stopped) return;
    stopped = true;
    if (err && !res.destroyed) res.destroy(err);
    finishIfIdle();
  };

  function onClose(): void {
    if (sentPos < end) stop();
  }

  const write = (buf: Buffer, n: number): void => {
    writing = true;
    sentPos += n;
    res.write(n === buf.length ? buf : buf.subarray(0, n), (err?: Error | null) => {
      writing = false;
      release(buf);
      if (err || stopped) return stop();
      if (queued) {
        const b = queued;
        queued = null;
        write(b, queuedLen);
      } else if (sentPos >= end) {
        res.end();
        finishIfIdle();
        return;
      }
      readNext();
    });
  };

  function readNext(): void {
    if (stopped || reading || readPos >= end) return;
    const buf = free.pop();
    if (!buf) return;
    reading = true;
    read(fd, buf, 0, Math.min(buf.length, end - readPos), readPos, (err, n) => {
      reading = false;
      if (stopped || err || n === 0) {
        release(buf);
        return stop(stopped ? null : (err ?? new Error(`file ended at byte ${readPos}, ${end - readPos} bytes short`)));
      }
      readPos += n;
      if (writing) {
        queued = buf;
        queuedLen = n;
      } else write(buf, n);
      readNext();
    });
  }

  res.on('close', onClose);
  readNext();
}
