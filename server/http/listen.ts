/**
 * Puts an app on a socket: plain HTTP or TLS, limits that keep hostile or
 * stuck clients from holding resources (header size and time, idle sockets),
 * CONNECT refused, and a graceful close that lets downloads in flight finish
 * for a bounded time before cutting what is left.
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
  /** request headers must arrive within this (default 20 s) */
  headersTimeoutMs?: number;
  /** largest request head accepted (default 16 KiB; larger → 431) */
  maxHeaderSize?: number;
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

export async function listenApp(airlock: AirlockApp, opts: ListenOptions): Promise<Listening> {
  const { host, port } = splitListen(opts.listen);
  const serverOpts: http.ServerOptions = {
    maxHeaderSize: opts.maxHeaderSize ?? 16 * 1024,
    headersTimeout: opts.headersTimeoutMs ?? 20_000,
    requestTimeout: 120_000,
    // long enough that a busy client reusing its connection rarely races our close of an idle one
    keepAliveTimeout: 30_000,
  };
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
    server = https.createServer({ ...serverOpts, cert, key }, airlock.callback());
  } else {
    server = http.createServer(serverOpts, airlock.callback());
  }
  // a client that stops reading (or sending) is cut after this long, which also frees its file handle
  server.setTimeout(opts.idleTimeoutMs ?? 60_000, (socket: Socket) => socket.destroy());
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    socket.on('error', () => {});
    socket.end(REFUSE_CONNECT);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) return socket.destroy();
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
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
