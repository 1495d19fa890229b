/**
 * A small in-process upstream for fault injection (tests use real components;
 * faults come from here, everything else is real).
 *
 * Files are served at their path with Range support unless their fault says
 * otherwise; a fault applies to the first `times` requests (default 1, or
 * forever for `wrong`, `norange`, `oversize`, `trickle`, `lie`, `length`). A registry v2 facade with an
 * anonymous Bearer token flow and optional redirects of blobs to a second
 * origin is included. Every byte of body sent is counted per path.
 *
 * `startTestProxy` is a forward proxy (absolute-URI GET and CONNECT) that
 * resolves fake host names itself, as squid does in the e2e world.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export type Fault =
  | { kind: 'reset'; at: number; times?: number }
  | { kind: 'truncate'; at: number; times?: number }
  | { kind: 'stall'; at: number; times?: number }
  | { kind: 'status'; status: number; times?: number }
  | { kind: 'wrong' }
  | { kind: 'norange' }
  | { kind: 'oversize'; extra: number }
  | { kind: 'redirect'; to: string }
  /** `at` bytes at once, then `bytes` (default 1) every `every` ms: never a stall, never done */
  | { kind: 'trickle'; at: number; every: number; bytes?: number }
  /** wrong bytes (each one flipped) from every request, the connection dropped at byte `at` of the body */
  | { kind: 'lie'; at: number }
  /** announces this Content-Length, then sends junk until the client hangs up */
  | { kind: 'length'; length: number };

export interface ServedFile {
  body: Buffer;
  contentType?: string;
  fault?: Fault;
}

export interface RequestRecord {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

export interface RegistryImage {
  /** repository name, e.g. demo/app */
  name: string;
  tags: Record<string, string>;
  /** digest (sha256:hex) → manifest bytes + media type */
  manifests: Record<string, { body: Buffer; mediaType: string }>;
  /** digest (sha256:hex) → blob bytes */
  blobs: Record<string, Buffer>;
}

export interface FaultUpstream {
  url: string;
  port: number;
  files: Map<string, ServedFile>;
  requests: RequestRecord[];
  /** body bytes written per path (and in total) */
  bytesSent(path?: string): number;
  /** a registry facade under /v2/; `auth` switches the 401 + token flow on */
  /** `realm` replaces the token realm announced in the 401 challenge; `trickleManifestsMs` sends manifests a byte at a time */
  registry(images: RegistryImage[], opts?: { auth?: boolean; redirectBlobsTo?: string; realm?: string; trickleManifestsMs?: number; trickleTokenMs?: number }): void;
  close(): Promise<void>;
}

export { sha256 } from './release.js';

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

export async function startFaultUpstream(): Promise<FaultUpstream> {
  const files = new Map<string, ServedFile>();
  const requests: RequestRecord[] = [];
  const sent = new Map<string, number>();
  const hits = new Map<string, number>();
  let images: RegistryImage[] = [];
  let registryAuth = false;
  let redirectBlobsTo: string | undefined;
  let realm: string | undefined;
  let trickleManifestsMs: number | undefined;
  let trickleTokenMs: number | undefined;
  const TOKEN = 'tok-fault-123';
  const sockets = new Set<net.Socket>();

  const count = (path: string, n: number): void => {
    sent.set(path, (sent.get(path) ?? 0) + n);
  };

  const serveFile = (req: http.IncomingMessage, res: http.ServerResponse, path: string, f: ServedFile): void => {
    const hit = (hits.get(path) ?? 0) + 1;
    hits.set(path, hit);
    const fault = f.fault;
    const active = (times = 1): boolean => hit <= times;
    const type = f.contentType ?? 'application/octet-stream';
    const write = (buf: Buffer): boolean => {
      count(path, buf.length);
      return res.write(buf);
    };
    if (fault?.kind === 'status' && active(fault.times)) {
      res.writeHead(fault.status, { 'content-type': 'text/plain' }).end('fault\n');
      return;
    }
    if (fault?.kind === 'redirect') {
      res.writeHead(302, { location: fault.to }).end();
      return;
    }
    if (fault?.kind === 'length') {
      res.writeHead(200, { 'content-type': type, 'content-length': fault.length });
      const junk = Buffer.alloc(64 * 1024, 0x42);
      const pump = (): void => {
        while (!res.destroyed && !req.socket.destroyed) {
          if (!write(junk)) return void res.once('drain', pump);
        }
      };
      res.once('close', () => res.removeAllListeners('drain'));
      pump();
      return;
    }
    let body = f.body;
    if (fault?.kind === 'lie') body = Buffer.from(body.map((b) => b ^ 0xff));
    if (fault?.kind === 'wrong') {
      body = Buffer.from(body);
      body[Math.floor(body.length / 2)] ^= 0xff;
    }
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
    if (range && fault?.kind !== 'norange' && fault?.kind !== 'oversize') start = Number(range[1]);
    if (start >= body.length && body.length > 0) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    const part = body.subarray(start);
    const headers: http.OutgoingHttpHeaders = { 'content-type': type, 'accept-ranges': fault?.kind === 'norange' ? 'none' : 'bytes' };
    if (fault?.kind === 'oversize') {
      // endless data: the body, then junk until the client hangs up
      res.writeHead(200, headers);
      write(body);
      const junk = Buffer.alloc(64 * 1024, 0x41);
      let extra = fault.extra;
      const pump = (): void => {
        while (extra > 0 && !res.destroyed) {
          extra -= junk.length;
          if (!write(junk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    if (start > 0) {
      headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
      res.statusCode = 206;
    }
    if (fault?.kind === 'truncate' && active(fault.times)) {
      // a clean end after `at` bytes, with no length announced: only the size tells
      res.writeHead(res.statusCode, { ...headers, connection: 'close' });
      write(part.subarray(0, Math.max(0, fault.at - start)));
      res.end();
      return;
    }
    headers['content-length'] = part.length;
    res.writeHead(res.statusCode, headers);
    if (req.method === 'HEAD') return void res.end();
    if (fault?.kind === 'trickle' || fault?.kind === 'lie') {
      const cut = Math.max(0, fault.at - start);
      write(part.subarray(0, cut));
      if (fault.kind === 'lie') return void setTimeout(() => req.socket.destroy(), 20);
      let off = cut;
      const step = fault.bytes ?? 1;
      const timer = setInterval(() => {
        if (res.destroyed || off >= part.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        write(part.subarray(off, off + step));
        off += step;
      }, fault.every);
      res.once('close', () => clearInterval(timer));
      return;
    }
    if ((fault?.kind === 'reset' || fault?.kind === 'stall') && active(fault.times)) {
      const cut = Math.max(0, fault.at - start);
      write(part.subarray(0, cut));
      if (fault.kind === 'reset') setTimeout(() => req.socket.destroy(), 20);
      // stall: keep the socket open and send nothing more
      return;
    }
    // large bodies in slices so backpressure is real
    let off = 0;
    const pump = (): void => {
      while (off < part.length) {
        const slice = part.subarray(off, off + 64 * 1024);
        off += slice.length;
        if (!write(slice)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  };

  const serveRegistry = (req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean => {
    if (!path.startsWith('/v2/') && path !== '/token') return false;
    if (path === '/token') {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const answer = Buffer.from(JSON.stringify({ token: TOKEN, scope: q.get('scope'), service: q.get('service') }));
      res.writeHead(200, { 'content-type': 'application/json' });
      if (!trickleTokenMs) {
        res.end(answer);
        return true;
      }
      let off = 0;
      const timer = setInterval(() => {
        if (res.destroyed || off >= answer.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(answer.subarray(off, ++off));
      }, trickleTokenMs);
      res.once('close', () => clearInterval(timer));
      return true;
    }
    if (registryAuth && req.headers.authorization !== `Bearer ${TOKEN}`) {
      const m = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(path);
      const scope = m ? `,scope="repository:${m[1]}:pull"` : '';
      res
        .writeHead(401, {
          'content-type': 'application/json',
          'www-authenticate': `Bearer realm="${realm ?? `http://127.0.0.1:${port}/token`}",service="fault-registry"${scope}`,
        })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return true;
    }
    if (path === '/v2/') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return true;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    const image = m ? images.find((i) => i.name === m[1]) : undefined;
    if (!m || !image) {
      res.writeHead(404).end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
      return true;
    }
    const ref = m[3]!;
    if (m[2] === 'manifests') {
      const digest = ref.startsWith('sha256:') ? ref : image.tags[ref];
      const man = digest ? image.manifests[digest] : undefined;
      if (!man || !digest) {
        res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
        return true;
      }
      const accept = String(req.headers.accept ?? '');
      if (!accept.includes(man.mediaType)) {
        res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"accept header does not support this manifest"}]}');
        return true;
      }
      res.writeHead(200, { 'content-type': man.mediaType, 'docker-content-digest': digest, 'content-length': man.body.length });
      if (trickleManifestsMs) {
        let off = 0;
        const timer = setInterval(() => {
          if (res.destroyed || off >= man.body.length) {
            clearInterval(timer);
            if (!res.destroyed) res.end();
            return;
          }
          count(path, 1);
          res.write(man.body.subarray(off, ++off));
        }, trickleManifestsMs);
        res.once('close', () => clearInterval(timer));
        return true;
      }
      count(path, man.body.length);
      res.end(man.body);
      return true;
    }
    const blob = image.blobs[ref];
    if (!blob) {
      res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
      return true;
    }
    if (redirectBlobsTo) {
      res.writeHead(307, { location: `${redirectBlobsTo}/storage/${ref.replace('sha256:', '')}?sig=x` }).end();
      return true;
    }
    serveFile(req, res, path, { body: blob });
    return true;
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    requests.push({ method: req.method ?? 'GET', path, headers: req.headers });
    if (serveRegistry(req, res, path)) return;
    const f = files.get(path);
    if (!f) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    serveFile(req, res, path, f);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const port = await listen(server);

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    files,
    requests,
    bytesSent: (path) => (path ? (sent.get(path) ?? 0) : [...sent.values()].reduce((a, b) => a + b, 0)),
    registry(list, opts = {}) {
      images = list;
      registryAuth = opts.auth ?? false;
      redirectBlobsTo = opts.redirectBlobsTo;
      realm = opts.realm;
      trickleManifestsMs = opts.trickleManifestsMs;
      trickleTokenMs = opts.trickleTokenMs;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TestProxy {
  url: string;
  /** request lines as a proxy logs them: `GET http://…` or `CONNECT host:port` */
  log: string[];
  close(): Promise<void>;
}

/** A forward proxy that resolves `hosts` names itself (clients never need to). */
export async function startTestProxy(hosts: Record<string, string> = {}): Promise<TestProxy> {
  const log: string[] = [];
  const sockets = new Set<net.Socket>();
  const resolveHost = (h: string): string => hosts[h] ?? h;
  const server = http.createServer((req, res) => {
    log.push(`${req.method} ${req.url}`);
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      return void res.writeHead(400).end('absolute URI required\n');
    }
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const up = http.request(
      { host: resolveHost(target.hostname), port: target.port || 80, path: target.pathname + target.search, method: req.method, headers },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        ur.on('error', () => res.destroy());
      },
    );
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end('bad gateway\n')));
    req.pipe(up);
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    log.push(`CONNECT ${req.url}`);
    const [h, p] = (req.url ?? '').split(':');
    const up = net.connect(Number(p), resolveHost(h ?? ''), () => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
