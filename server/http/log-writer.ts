/**
 * Where `airlock serve` writes its access log (pino's destination): lines
 * kept as they come, in an array, and written together, one write in flight
 * at a time, each write taking every line waiting.
 *
 * Why not pino.destination({ sync: false }) (sonic-boom): it appends each
 * line to a string of up to 16 KiB and measures that string on every line,
 * which flattens it (a copy of up to 16 KiB per log line), and it writes one
 * such string per write. At 30,000+ 8 KiB responses a second (~7 MB/s of
 * log) one write per event-loop turn drained less than the turn logged, so
 * the backlog grew: its strings outlived two scavenges, were promoted, and
 * old space grew by ~9 MB/s to 80 MB before a full GC took it back (serve's
 * peak RSS 180-190 MiB in scripts/bench/serve.mjs; 124 MiB with this writer).
 * A synchronous write per line holds the event loop for a syscall per
 * request instead.
 *
 * Lines wait at most one write: while one is in flight the next ones gather,
 * and its completion writes all of them at once (joined into one buffer).
 * Past `maxPending` bytes waiting (the log's disk or pipe stalled) new lines
 * are dropped and counted, and the count is logged once writing resumes,
 * rather than letting the log take the server's memory.
 */
import { write, writeSync } from 'node:fs';

/** bytes of log waiting while a write is in flight, past which lines are dropped */
export const MAX_PENDING = 8 * 1024 * 1024;

/** how long to wait before retrying a write to a non-blocking pipe or socket that is full */
const EAGAIN_RETRY_MS = 10;

export class LogWriter {
  private lines: string[] = [];
  private pendingBytes = 0;
  /** the bytes being written, null when no write is in flight */
  private writing: Buffer | null = null;
  private dropped = 0;
  private waiters: Array<(err?: Error) => void> = [];

  constructor(
    private readonly fd: number,
    private readonly maxPending = MAX_PENDING,
  ) {}

  /** pino's destination interface: one line (ending in a newline) */
  write(line: string): boolean {
    if (this.pendingBytes + line.length > this.maxPending) {
      this.dropped++;
      return false;
    }
    this.lines.push(line);
    this.pendingBytes += line.length;
    if (!this.writing) this.writeNext();
    return true;
  }

  /** calls back once every line written so far is out (pino's `logger.flush(cb)`) */
  flush(cb?: (err?: Error) => void): void {
    if (!this.writing && this.lines.length === 0) {
      if (cb) process.nextTick(cb);
      return;
    }
    if (cb) this.waiters.push(cb);
  }

  /** writes the lines waiting behind the write in flight, blocking: for a process exiting without its event loop */
  flushSync(): void {
    const rest = Buffer.from(this.takeLines().join(''));
    try {
      for (let at = 0; at < rest.length; ) at += writeSync(this.fd, rest, at);
    } catch {
      // a full pipe or a closed log at exit: these lines are lost, as they would be with no flush
    }
  }

  private takeLines(): string[] {
    if (this.dropped > 0) {
      this.lines.push(`${JSON.stringify({ level: 40, time: new Date().toISOString(), dropped: this.dropped, msg: 'access log lines dropped: the log could not be written fast enough' })}\n`);
      this.dropped = 0;
    }
    const lines = this.lines;
    this.lines = [];
    this.pendingBytes = 0;
    return lines;
  }

  private writeNext(): void {
    if (this.lines.length === 0 && this.dropped === 0) {
      this.writing = null;
      const waiters = this.waiters;
      this.waiters = [];
      for (const cb of waiters) cb();
      return;
    }
    this.writeOut(Buffer.from(this.takeLines().join('')), 0);
  }

  private writeOut(buf: Buffer, at: number): void {
    this.writing = buf;
    write(this.fd, buf, at, buf.length - at, null, (err, n) => {
      if (err) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.writeOut(buf, at), EAGAIN_RETRY_MS);
          return;
        }
        // the log is gone (a closed pipe, a full disk): what waits is lost, serving goes on
        this.writing = null;
        this.takeLines();
        const waiters = this.waiters;
        this.waiters = [];
        for (const cb of waiters) cb(err);
        return;
      }
      if (at + n < buf.length) return this.writeOut(buf, at + n);
      this.writeNext();
    });
  }
}
