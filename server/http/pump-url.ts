/**
 * Streams a byte range of an object from a plain-HTTP object store (RGW on
 * the site's network), GET by a presigned URL, to an HTTP response, with
 * buffers that are reused instead of allocated: pump-file.ts's way, for a
 * socket instead of a descriptor.
 *
 * Why not the SDK's GetObject stream piped into the response: Node's HTTP
 * client reads each socket chunk into a fresh 64 KiB buffer. Serving from
 * the bucket at a few hundred MiB/s, V8 let ~64 MiB of those dead buffers
 * pile up before each collection, and that collection (marking the whole
 * heap) was a third of serve's CPU: peak RSS 180-200 MiB, 1.3 s CPU/GiB.
 *
 * Here the gateway's socket reads (`onread`) into 64 KiB granules from one
 * pool; a granule holding body bytes goes straight to the response's socket
 * and back to the pool when that write completed. A response has at most
 * two granules on its client's socket (a second only within BUDGET for all
 * of them), and the gateway's socket is paused meanwhile, so a slow client
 * slows its GET instead of piling bytes up here. A socket reading on holds
 * the granule its next read lands in; a paused or idle one holds none (its
 * next read lands in one shared buffer and is copied out). The request is a
 * single GET with the Range asked for; the answer's status, length and
 * Content-Range are checked before the first byte is sent on. Sockets that
 * ended a body whole are kept for the next GET (keep-alive); a client that
 * goes away, an error or a stall destroys the gateway's socket, so no
 * request outlives its response.
 */
import { connect, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';

export const GRANULE = 64 * 1024;
/** body bytes on client sockets beyond the first granule of each response; also the idle pool's cap */
export const BUDGET = 4 * 1024 * 1024;
/** idle keep-alive sockets kept per gateway, and for how long */
const MAX_IDLE = 32;
const IDLE_MS = 10_000;
/** connecting, and waiting for the answer's head */
const HEAD_TIMEOUT_MS = 30_000;
/** no byte moved between the gateway and the client for this long: both are cut */
const STALL_MS = 120_000;
/** a head larger than this is not a GetObject answer */
const MAX_HEAD = 8 * 1024;

const pool: Buffer[] = [];
/**
 * What a paused or idle socket reads into next, shared by all: a read and its
 * callback run in one go, and a read that lands here is copied out at once.
 * So a socket waiting for its client holds no granule of its own.
 */
const scratch = Buffer.allocUnsafeSlow(GRANULE);
/** granules handed to client sockets (not the ones gateway sockets read into) */
let inUseBytes = 0;
let active = 0;
let sockets = 0;

const take = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(GRANULE);

function recycle(b: Buffer): void {
  if (b !== scratch && (pool.length + 1) * GRANULE <= BUDGET) pool.push(b);
}

/** for metrics and tests: responses being pumped, body bytes on client sockets, idle granules, gateway sockets open and kept idle */
export const pumpUrlStats = (): { active: number; inUseBytes: number; pooledBytes: number; sockets: number; idleSockets: number } => ({
  active,
  inUseBytes,
  pooledBytes: pool.length * GRANULE,
  sockets,
  idleSockets: [...idle.values()].reduce((n, list) => n + list.length, 0),
});

/**
 * A socket to the gateway. Its reads land in `next` (a granule from the pool
 * while its request reads on; `scratch` while paused or idle) and are given
 * to `onBytes`, the request it serves now; none between requests (a byte
 * then is a protocol error, and the socket is dropped).
 */
interface Conn {
  socket: Socket;
  key: string;
  next: Buffer | null;
  /** the last read was refused (paused) or the socket is idle: its next read lands in `scratch` */
  waiting: boolean;
  /** false: pause reading until resume() */
  onBytes: ((buf: Buffer, n: number) => boolean) | null;
  /** the socket closed or failed; called once */
  onGone: ((err: Error | null) => void) | null;
  idleTimer: NodeJS.Timeout | null;
  /** served at least one request: a failure before any answer may be a close the gateway raced with */
  reused: boolean;
}

const idle = new Map<string, Conn[]>();

function open(host: string, port: number, key: string): Conn {
  const conn: Conn = { socket: null as unknown as Socket, key, next: null, waiting: false, onBytes: null, onGone: null, idleTimer: null, reused: false };
  const socket = connect({
    host,
    port,
    noDelay: true,
    onread: {
      // called after each callback below, for the read after it
      buffer: () => (conn.next = conn.waiting ? scratch : take()),
      callback: (n, read) => {
        let buf = read as Buffer;
        conn.next = null;
        const on = conn.onBytes;
        if (!on) {
          recycle(buf);
          socket.destroy();
          return false;
        }
        if (buf === scratch) {
          buf = take();
          scratch.copy(buf, 0, 0, n);
        }
        // `buf` is now the request's (on a client socket, or back in the pool)
        const more = on(buf, n);
        conn.waiting = !more || conn.onBytes === null;
        return more;
      },
    },
  });
  conn.socket = socket;
  sockets++;
  socket.on('error', () => {});
  socket.on('close', () => {
    sockets--;
    if (conn.next) recycle(conn.next);
    conn.next = null;
    unidle(conn);
    const gone = conn.onGone;
    conn.onGone = null;
    conn.onBytes = null;
    gone?.(socket.errored ?? null);
  });
  // an idle socket the gateway closes: 'end' then 'close'
  socket.on('end', () => socket.destroy());
  return conn;
}

function unidle(conn: Conn): void {
  if (conn.idleTimer) clearTimeout(conn.idleTimer);
  conn.idleTimer = null;
  const list = idle.get(conn.key);
  const i = list?.indexOf(conn) ?? -1;
  if (i >= 0) list!.splice(i, 1);
}

function release(conn: Conn): void {
  conn.onBytes = null;
  conn.onGone = null;
  conn.reused = true;
  conn.socket.setTimeout(0);
  const list = idle.get(conn.key) ?? [];
  if (conn.socket.destroyed || list.length >= MAX_IDLE) return void conn.socket.destroy();
  list.push(conn);
  idle.set(conn.key, list);
  // an idle socket does not hold a stopping process
  conn.socket.unref();
  conn.idleTimer = setTimeout(() => conn.socket.destroy(), IDLE_MS).unref();
}

function acquire(host: string, port: number, fresh: boolean): Conn {
  const key = `${host}:${port}`;
  const conn = fresh ? undefined : idle.get(key)?.pop();
  if (conn) {
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    conn.idleTimer = null;
    conn.socket.ref();
    return conn;
  }
  return open(host, port, key);
}

/** The parts of an answer's head that decide whether its body is the range asked for. */
interface Head {
  status: number;
  length: number | null;
  range: string | null;
  close: boolean;
}

function parseHead(text: string): Head | null {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) return null;
  const head: Head = { status: Number(m[1]), length: null, range: null, close: lines[0]!.startsWith('HTTP/1.0') };
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length') head.length = /^\d+$/.test(value) ? Number(value) : null;
    else if (name === 'content-range') head.range = value;
    else if (name === 'connection') head.close = value.toLowerCase() === 'close';
    else if (name === 'transfer-encoding') head.length = null;
  }
  return head;
}

/** What is wrong with an answer to a GET of bytes [start, end), or null when its body is exactly them. */
function refusal(head: Head, start: number, end: number, ranged: boolean): string | null {
  if (head.status === 404) return 'the object is not in the bucket (404)';
  if (head.status !== (ranged ? 206 : 200)) return `the gateway answered ${head.status}`;
  if (head.length !== end - start) return `the gateway's answer has ${head.length ?? 'no'} Content-Length, not ${end - start}`;
  if (ranged) {
    const m = /^bytes (\d+)-(\d+)\/\d+$/.exec(head.range ?? '');
    if (!m || Number(m[1]) !== start || Number(m[2]) !== end - 1) return `the gateway answered range ${head.range ?? '(none)'}, not ${start}-${end - 1}`;
  }
  return null;
}

/**
 * Sends bytes [start, end) of the object at `url` (a presigned plain-HTTP
 * GET; `ranged` false: the whole object, which is exactly that long) as the
 * body of `res`, whose head the caller has set, and ends it. Any failure
 * (the gateway unreachable or answering anything but those bytes, a socket
 * error, a stall) destroys the response with the reason: the client sees a
 * short body, never wrong bytes.
 */
export function pumpUrl(url: URL, start: number, end: number, ranged: boolean, res: ServerResponse): void {
  if (url.protocol !== 'http:') throw new Error(`pumpUrl: plain http only, not ${url.protocol}`);
  if (res.destroyed) return;
  active++;
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || 80);
  const request = Buffer.from(
    `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: airlock\r\n` +
      (ranged ? `Range: bytes=${start}-${end - 1}\r\n` : '') +
      '\r\n',
    'latin1',
  );
  let conn: Conn;
  let head = '';
  let headDone = false;
  let reuse = false;
  let sent = start;
  /** granules on the client's socket: the second only within BUDGET */
  let writing = 0;
  let paused = false;
  let finished = false;
  let attempts = 0;
  /** the response closed: granules still on its socket no longer count (a write on a dead socket may never call back) */
  let dropped = false;

  const finish = (err: Error | null): void => {
    if (finished) return;
    finished = true;
    active--;
    res.off('close', onClientClose);
    if (err) {
      conn.onBytes = null;
      conn.onGone = null;
      conn.socket.destroy();
      if (!res.destroyed) res.destroy(err);
    }
  };

  function onClientClose(): void {
    // the client went away before the last byte: the gateway's request goes with it
    if (!finished) finish(new Error('client went away'));
  }

  const resume = (): void => {
    if (!paused || finished) return;
    paused = false;
    conn.socket.resume();
  };

  const onBytes = (buf: Buffer, n: number): boolean => {
    if (finished) {
      recycle(buf);
      return false;
    }
    let from = 0;
    if (!headDone) {
      // only the head's bytes become a string (the whole read would be a 64 KiB string per GET)
      const before = head.length;
      head += buf.toString('latin1', 0, Math.min(n, MAX_HEAD + 4 - before));
      const at = head.indexOf('\r\n\r\n');
      if (at < 0) {
        recycle(buf);
        if (head.length > MAX_HEAD) finish(new Error('the gateway sent no HTTP head'));
        return true;
      }
      headDone = true;
      from = at + 4 - before;
      const parsed = parseHead(head.slice(0, at));
      const wrong = parsed ? refusal(parsed, start, end, ranged) : 'the gateway sent no HTTP head';
      if (wrong) {
        recycle(buf);
        finish(new Error(`GET ${url.pathname}: ${wrong}`));
        return false;
      }
      reuse = !parsed!.close;
      conn.socket.setTimeout(STALL_MS);
    }
    const len = Math.min(n - from, end - sent);
    if (len <= 0) {
      recycle(buf);
      return true;
    }
    sent += len;
    writing++;
    inUseBytes += GRANULE;
    const last = sent === end;
    res.write(from === 0 && len === GRANULE ? buf : buf.subarray(from, from + len), (err) => {
      writing--;
      if (!dropped) inUseBytes -= GRANULE;
      recycle(buf);
      if (err) return finish(err);
      resume();
    });
    if (last) {
      // the whole body is in: the socket may serve the next GET while the client takes the last bytes
      const c = conn;
      finished = true;
      active--;
      res.off('close', onClientClose);
      res.end();
      if (reuse && n - from === len) release(c);
      else c.socket.destroy();
      return true;
    }
    // one granule on the client's socket always; a second while all responses hold less than BUDGET
    if (writing >= 2 || (writing === 1 && inUseBytes > BUDGET)) {
      paused = true;
      return false;
    }
    return true;
  };

  const send = (): void => {
    attempts++;
    conn = acquire(host, port, attempts > 1);
    const reused = conn.reused;
    conn.onBytes = onBytes;
    conn.onGone = (err) => {
      if (finished) return;
      // a kept-alive socket the gateway closed just as we asked: once more on a fresh one
      if (reused && !head && attempts < 2) return send();
      finish(new Error(`GET ${url.pathname}: the gateway's connection ${err ? `failed (${err.message})` : 'closed'} at byte ${sent} of ${start}-${end - 1}`));
    };
    conn.socket.setTimeout(HEAD_TIMEOUT_MS);
    conn.socket.removeAllListeners('timeout');
    conn.socket.once('timeout', () => finish(new Error(`GET ${url.pathname}: the gateway was silent for ${headDone ? STALL_MS : HEAD_TIMEOUT_MS} ms`)));
    conn.socket.write(request);
  };

  res.on('close', onClientClose);
  res.once('close', () => {
    dropped = true;
    inUseBytes -= writing * GRANULE;
  });
  send();
}
