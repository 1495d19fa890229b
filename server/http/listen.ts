/**
 * Puts an app on a socket: plain HTTP or TLS, limits that keep hostile or
 * stuck clients from holding resources (a connection cap, header size and
 * time, idle sockets), CONNECT refused, and a graceful close that lets
 * downloads in flight finish for a bounded time before cutting what is left.
 *
 * Every socket the server gives up on is destroyed, never only ended: a
 * client that never reads the answer nor closes would otherwise keep a
 * half-open socket, and its file descriptor, for as long as it likes.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AirlockError } from '../../manifests/errors.js';
import type { AirlockApp } from './app.js';

export interface ListenOptions {
  /** HOST:PORT; port 0 picks a free one */
  listen: string;
  tls?: { cert: string; key: string } | null;
  /** a socket with no bytes moving for this long is destroyed (default 60 s) */
  idleTimeoutMs?: number;
  /** a request head must be complete this long after the connection opened or the previous request ended (default 20 s) */
  headersTimeoutMs?: number;
  /** largest request head accepted (default 16 KiB; larger → 431) */
  maxHeaderSize?: number;
  /** connections open at once; more are closed at accept (default: defaultMaxConnections()) */
  maxConnections?: number;
}

export interface Listening {
  server: http.Server;
  host: string;
  port: number;
  /** e.g. http://127.0.0.1:7070 */
  url: string;
  /** stop accepting, let in-flight responses finish up to `graceMs` (default 30 s), then cut the rest */
  close(graceMs?: number): Promise<void>;
}

export function splitListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new AirlockError('EUSAGE', `listen address must be HOST:PORT, got "${listen}"`);
  return { host: (m[1] ?? m[2])!, port };
}

const REFUSE_CONNECT =
  'HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 78\r\n\r\n' +
  'airlock: CONNECT tunnels are refused; only staged http:// URLs are answered.\n';

/** how long a client that was answered an error may take to read it and close, before its socket is destroyed */
const ERROR_LINGER_MS = 1000;

/**
 * 1024, or less when the descriptor limit could not hold that many: each
 * connection may hold two descriptors (its socket and the blob it is sent),
 * and the store, logs and libraries need some of their own.
 */
export function defaultMaxConnections(limits: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number {
  let soft = Infinity;
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits());
    if (m && m[1] !== 'unlimited') soft = Number(m[1]);
  } catch {
    // not Linux: keep the fixed default
  }
  return Math.max(16, Math.min(1024, Math.floor((soft - 128) / 2)));
}

/**
 * Ends `socket` with `answer` and destroys it once the answer is flushed
 * (`destroyWhenFlushed`) or after `lingerMs`, whichever comes first; a
 * client that reads it and closes sooner frees the socket sooner.
 */
function answerAndDestroy(socket: Duplex, answer: string, lingerMs: number, destroyWhenFlushed: boolean): void {
  socket.on('error', () => {});
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.end(answer, destroyWhenFlushed ? () => socket.destroy() : undefined);
}

export async function listenApp(airlock: AirlockApp, opts: ListenOptions): Promise<Listening> {
  const { host, port } = splitListen(opts.listen);
  const headersTimeout = opts.headersTimeoutMs ?? 20_000;
  const maxConnections = opts.maxConnections ?? defaultMaxConnections();
  if (!(headersTimeout > 0)) throw new AirlockError('EUSAGE', `the header timeout must be positive, got ${headersTimeout} ms`);
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new AirlockError('EUSAGE', `max_connections must be a positive integer, got ${maxConnections}`, { key: 'max_connections' });
  }
  // Node checks header and request deadlines only every connectionsCheckingInterval (30 s by
  // default); check often, and start early by one interval, so a slow head is cut by headersTimeout.
  const checkMs = Math.max(50, Math.min(1000, Math.round(headersTimeout / 10)));
  const serverOpts: http.ServerOptions = {
    maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
    headersTimeout: Math.max(1, headersTimeout - checkMs),
    requestTimeout: Math.max(120_000, headersTimeout),
    connectionsCheckingInterval: checkMs,
    // long enough that a busy client reusing its connection rarely races our close of an idle one
    keepAliveTimeout: 30_000,
  };
  const metrics = airlock.metrics;
  let server: http.Server;
  if (opts.tls) {
    let cert: Buffer;
    let key: Buffer;
    try {
      cert = readFileSync(opts.tls.cert);
      key = readFileSync(opts.tls.key);
    } catch (e) {
      throw new AirlockError('EUSAGE', `tls: cannot read cert/key: ${(e as Error).message}`);
    }
    // the TLS handshake gets the same time as a request head (Node's default is 120 s)
    server = https.createServer({ ...serverOpts, cert, key, handshakeTimeout: headersTimeout }, airlock.callback());
  } else {
    server = http.createServer(serverOpts, airlock.callback());
  }
  // beyond the cap, Node closes new connections at accept, before any byte is read or any memory spent
  server.maxConnections = maxConnections;
  server.on('drop', () => metrics.refused());
  metrics.watchConnections(
    () => new Promise((resolve) => server.getConnections((err, n) => resolve(err ? 0 : n))),
    maxConnections,
  );
  // a client that stops reading (or sending) is cut after this long, which also frees its file handle
  server.setTimeout(opts.idleTimeoutMs ?? 60_000, (socket: Socket) => {
    metrics.cut('idle');
    socket.destroy();
  });
  const answered = new WeakSet<Duplex>();
  /** answers a client the server gives up on, and destroys its socket either way */
  const giveUp = (socket: Duplex, code: string | undefined): void => {
    // a second error on a socket already being answered (more bytes of a bad request) changes nothing
    if (answered.has(socket) || socket.destroyed) return;
    answered.add(socket);
    const timedOut = code === 'ERR_HTTP_REQUEST_TIMEOUT';
    metrics.cut(timedOut ? 'request_timeout' : 'bad_request');
    // no answer when part of a response already went out: it would corrupt that one
    const inFlight = (socket as Duplex & { _httpMessage?: http.ServerResponse | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent) return void socket.destroy();
    const status = timedOut
      ? '408 Request Timeout'
      : code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : '400 Bad Request';
    // a client out of time gets no linger; a merely wrong one gets a moment to read why
    answerAndDestroy(socket, `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, ERROR_LINGER_MS, timedOut);
  };
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => giveUp(socket, err.code));
  // Node restarts a head's deadline at its first byte, so a client silent until just before it and
  // trickling afterwards would get it twice: the first head must be complete headersTimeout after
  // the connection opened (after the TLS handshake, which has a timeout of its own)
  const firstHead = new WeakMap<Duplex, NodeJS.Timeout>();
  server.on(opts.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    const timer = setTimeout(() => giveUp(socket, 'ERR_HTTP_REQUEST_TIMEOUT'), headersTimeout);
    timer.unref();
    firstHead.set(socket, timer);
    socket.once('close', () => clearTimeout(timer));
  });
  const headArrived = (socket: Duplex): void => {
    clearTimeout(firstHead.get(socket));
    firstHead.delete(socket);
  };
  server.on('request', (req: http.IncomingMessage) => headArrived(req.socket));
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    headArrived(socket);
    answerAndDestroy(socket, REFUSE_CONNECT, ERROR_LINGER_MS, false);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new AirlockError('EUSAGE', `cannot listen on ${opts.listen}: ${e.code ?? e.message}`, { listen: opts.listen })),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    server,
    host: addr.address,
    port: addr.port,
    url: `${opts.tls ? 'https' : 'http'}://${shownHost}:${addr.port}`,
    close(graceMs = 30_000) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // idle keep-alive sockets would hold close() open; busy ones finish their response first
        server.closeIdleConnections();
        const sweep = setInterval(() => server.closeIdleConnections(), 200);
        sweep.unref();
        server.once('close', () => clearInterval(sweep));
      });
      return closing;
    },
  };
}
