/**
 * Streams a byte range of an open file to an HTTP response, with buffers
 * that are reused instead of allocated.
 *
 * Why not `fs.createReadStream(…).pipe(res)`: a read stream allocates a
 * fresh buffer per chunk, which the kernel must map and zero (page faults)
 * and V8 frees only at a later GC. Serving a GiB that way costs about three
 * times the CPU of reading it into a reused buffer, and its garbage is what
 * made RSS climb under load.
 *
 * Here all body memory is 64 KiB granules from one pool. A chunk is 1 to 16
 * granules, read with one `preadv` and written with one corked `writev`; a
 * response holds at most two chunks (one on the socket while the next is
 * read, so disk and socket overlap) and gives its granules back once the
 * socket write completed. The chunk length is picked per read from how many
 * responses run now, and a read-ahead only happens within BUDGET, so bodies
 * in flight hold at most BUDGET plus one granule per response whatever the
 * concurrency (512 KiB chunks for 16 downloads, 64 KiB for 200), and a long
 * download adapts when the load changes under it. One granule size means the
 * pool never has to drop buffers of the wrong size when the load changes
 * shape: allocation stops once the pool is warm (several sizes of buffers,
 * tried first, churned the malloc heap to 170+ MiB RSS under 200 clients).
 */
import { close, readv } from 'node:fs';
import type { ServerResponse } from 'node:http';

export const GRANULE = 64 * 1024;
/** body bytes that responses in flight may hold together before they stop reading ahead; also the pool's cap */
export const BUDGET = 16 * 1024 * 1024;
/** granules per chunk at most (1 MiB) */
export const MAX_GRANULES = 16;

const pool: Buffer[] = [];
let inUseBytes = 0;
let active = 0;

/** granules for the next read: two chunks per running response within BUDGET, no more than what is left to send */
function granulesFor(left: number, second: boolean): number {
  const fair = Math.floor(BUDGET / (2 * GRANULE * Math.max(active, 1)));
  const room = Math.floor((BUDGET - inUseBytes) / GRANULE);
  const n = Math.min(MAX_GRANULES, fair, room, Math.ceil(left / GRANULE));
  // the first chunk of a response is always granted (a response must progress); a read-ahead only within BUDGET
  return n >= 1 ? n : second ? 0 : 1;
}

function take(n: number): Buffer[] {
  inUseBytes += n * GRANULE;
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(pool.pop() ?? Buffer.allocUnsafeSlow(GRANULE));
  return out;
}

/**
 * Granules the socket is done with go back to the pool, up to BUDGET of them.
 * The pool is not shrunk when in-use grows: a granule dropped here is freed
 * only at some later GC, while the next read would malloc a new one; that
 * churn, not the bytes in use, is what grew the malloc heap under 200 clients.
 */
function recycle(bufs: Buffer[]): void {
  for (const b of bufs) if ((pool.length + 1) * GRANULE <= BUDGET) pool.push(b);
}

function give(bufs: Buffer[]): void {
  inUseBytes -= bufs.length * GRANULE;
  recycle(bufs);
}

/** for metrics and tests: responses being pumped, body buffer bytes held by them and idle in the pool */
export const pumpStats = (): { active: number; inUseBytes: number; pooledBytes: number } => ({
  active,
  inUseBytes,
  pooledBytes: pool.length * GRANULE,
});

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
  let readPos = start;
  let sentPos = start;
  let reading = false;
  /** the chunk being written; its callback may outlive the response (then it no longer counts as ours) */
  let writing: Buffer[] | null = null;
  let queued: Buffer[] | null = null;
  let queuedLen = 0;
  let stopped = false;
  let closed = false;

  const finishIfIdle = (): void => {
    if (closed || reading || (!stopped && sentPos < end)) return;
    closed = true;
    active--;
    res.off('close', onClose);
    close(fd, noop);
    if (queued) give(queued);
    queued = null;
    // a write still pending on a dead socket may never call back: stop counting its granules now
    if (writing) inUseBytes -= writing.length * GRANULE;
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

  const write = (bufs: Buffer[], n: number): void => {
    writing = bufs;
    sentPos += n;
    const done = (err?: Error | null): void => {
      writing = null;
      if (closed) return recycle(bufs);
      give(bufs);
      if (err || stopped) {
        stop();
        return finishIfIdle();
      }
      if (queued) {
        const q = queued;
        queued = null;
        write(q, queuedLen);
      } else if (sentPos >= end) {
        res.end();
        finishIfIdle();
        return;
      }
      readNext();
    };
    // one writev for the whole chunk; callbacks run in order, so the last one means all were written
    const last = Math.ceil(n / GRANULE) - 1;
    if (last > 0) res.cork();
    for (let i = 0; i <= last; i++) {
      const b = bufs[i]!;
      const len = i < last ? GRANULE : n - last * GRANULE;
      res.write(len === GRANULE ? b : b.subarray(0, len), i === last ? done : undefined);
    }
    if (last > 0) res.uncork();
    // granules past the end of a short read were not written: back to the pool now
    if (bufs.length > last + 1) give(bufs.splice(last + 1));
  };

  function readNext(): void {
    // at most two chunks per response: one on the socket, one being read or waiting for it
    if (stopped || reading || queued || readPos >= end) return;
    const n = granulesFor(end - readPos, writing !== null);
    if (n === 0) return; // over BUDGET: no read-ahead; the next read starts when this write completes
    const bufs = take(n);
    reading = true;
    const want = Math.min(n * GRANULE, end - readPos);
    // the last granule may be longer than what is left of the range: read only that much into it
    const into = want < n * GRANULE ? [...bufs.slice(0, n - 1), bufs[n - 1]!.subarray(0, want - (n - 1) * GRANULE)] : bufs;
    readv(fd, into, readPos, (err, got) => {
      reading = false;
      if (stopped || err || got === 0) {
        give(bufs);
        if (!stopped) stop(err ?? new Error(`file ended at byte ${readPos}, ${end - readPos} bytes short`));
        return finishIfIdle();
      }
      readPos += got;
      if (writing) {
        queued = bufs;
        queuedLen = got;
      } else write(bufs, got);
      readNext();
    });
  }

  res.on('close', onClose);
  readNext();
}
