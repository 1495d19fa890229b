/**
 * pumpUrl between two real sockets: a stand-in gateway (node:http, Range,
 * keep-alive, and misbehaviours on demand) and a server that pumps its
 * object to clients. Exact bytes whole and ranged, sockets kept alive and
 * reused, a wrong answer never sent on, a client that goes away closes the
 * gateway's request, memory bounded with clients that do not read.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUDGET, GRANULE, pumpUrl, pumpUrlStats } from '../../../server/http/pump-url.js';

const body = randomBytes(3 * 1024 * 1024 + 5);
/** sent in full by the gateway whatever the client reads: bigger than loopback's socket buffers */
const big = 48 * 1024 * 1024;
let gateway: http.Server;
let server: http.Server;
let gatewayUrl: string;
let port: number;
/** gateway sockets open now, and every one ever accepted */
const open = new Set<Socket>();
let accepted = 0;
let gets = 0;
/** requests each gateway socket got */
const served0 = new WeakMap<Socket, number>();

/** sockets holding the process before this file's servers exist */
let heldAtStart = 0;

beforeAll(async () => {
  heldAtStart = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
  gateway = http.createServer((req, res) => {
    gets++;
    const u = new URL(req.url ?? '/', 'http://x');
    const fault = u.searchParams.get('fault');
    const obj = u.pathname === '/big' ? null : body;
    const size = obj ? obj.length : big;
    if (fault === '404') return res.writeHead(404, { 'Content-Length': 0 }).end();
    // a keep-alive timeout racing the request: a socket that served before is closed without an answer
    const served = (served0.get(req.socket) ?? 0) + 1;
    served0.set(req.socket, served);
    if (fault === 'stale' && served > 1) return void req.socket.destroy();
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    let start = m ? Number(m[1]) : 0;
    const end = m ? Number(m[2]) + 1 : size;
    if (fault === 'shifted') start += 1; // the wrong bytes: never to reach a client
    const headers: http.OutgoingHttpHeaders = { 'Content-Length': end - start };
    if (m) headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
    res.writeHead(m ? 206 : 200, headers);
    if (fault === 'cut') return void res.write(obj!.subarray(start, start + 1000), () => res.destroy());
    if (obj) return res.end(obj.subarray(start, end));
    const chunk = Buffer.alloc(1024 * 1024);
    let left = end - start;
    const go = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', go);
      }
      res.end();
    };
    res.on('close', () => (left = 0));
    go();
  });
  gateway.on('connection', (s: Socket) => {
    accepted++;
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((r) => gateway.listen(0, '127.0.0.1', r));
  gatewayUrl = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
  // GET /?path=/obj&start=S&end=E&ranged=1&fault=…: pumps the gateway's object
  server = http.createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const start = Number(q.get('start') ?? 0);
    const end = Number(q.get('end') ?? (q.get('path') === '/big' ? big : body.length));
    const url = new URL(`${gatewayUrl}${q.get('path') ?? '/obj'}?X-Amz-Signature=abc${q.get('fault') ? `&fault=${q.get('fault')}` : ''}`);
    res.writeHead(200, { 'Content-Length': end - start });
    pumpUrl(url, start, end, q.get('ranged') === '1', res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server?.closeAllConnections();
  gateway?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await new Promise((r) => gateway?.close(r));
});

function get(path: string): Promise<{ status: number; body: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', (e) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), error: e.message }));
    });
    req.on('error', (e) => resolve({ status: 0, body: Buffer.alloc(0), error: e.message }));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** no response pumping, no granule on a client socket, every gateway socket open is an idle one (and the gateway agrees) */
async function settled(): Promise<void> {
  const t0 = Date.now();
  const done = (): boolean => {
    const s = pumpUrlStats();
    return s.active === 0 && s.inUseBytes === 0 && s.sockets === s.idleSockets && open.size === s.sockets;
  };
  while (!done() && Date.now() - t0 < 5000) await sleep(20);
  const s = pumpUrlStats();
  expect(s).toMatchObject({ active: 0, inUseBytes: 0, sockets: s.idleSockets });
  expect(open.size).toBe(s.sockets);
  expect(s.pooledBytes).toBeLessThanOrEqual(BUDGET);
}

describe('pumpUrl', () => {
  it('sends exactly the bytes asked for, whole and ranged, across granule edges, on kept-alive sockets', async () => {
    const whole = await get('/');
    expect(whole.status).toBe(200);
    expect(whole.body.equals(body)).toBe(true);
    const ranges: Array<[number, number]> = [
      [0, 1],
      [GRANULE - 1, GRANULE + 1],
      [1, 16 * GRANULE + 1],
      [body.length - 3, body.length],
      [1000, body.length - 1000],
    ];
    const accepted0 = accepted;
    for (const [start, end] of ranges) {
      const r = await get(`/?start=${start}&end=${end}&ranged=1`);
      expect(r.error).toBeUndefined();
      expect(r.body.equals(body.subarray(start, end))).toBe(true);
    }
    // one after another: the socket of the first GET serves the next ones
    expect(accepted - accepted0).toBeLessThanOrEqual(1);
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`/?start=${i * 1000}&end=${body.length - i}&ranged=1`)));
    many.forEach((r, i) => expect(r.body.equals(body.subarray(i * 1000, body.length - i))).toBe(true));
    await settled();
    expect(pumpUrlStats().idleSockets).toBeGreaterThan(0);
    // kept-alive sockets do not hold a stopping process: were they ref'd, both ends of each would count here
    const held = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    expect(held - heldAtStart).toBeLessThan(open.size + pumpUrlStats().idleSockets);
  });

  it('a gateway that answers 404, the wrong range or a short body: the client gets a cut response, never wrong bytes; the socket is closed', async () => {
    for (const fault of ['404', 'shifted', 'cut']) {
      const r = await get(`/?start=10&end=200000&ranged=1&fault=${fault}`);
      expect(r.error ?? 'short').toBeTruthy();
      expect(r.body.length).toBeLessThan(200000 - 10);
      expect(r.body.equals(body.subarray(10, 10 + r.body.length))).toBe(true);
    }
    await settled();
  });

  it('a kept-alive socket the gateway closes as it is asked: the GET is made again on a fresh one', async () => {
    await get('/?start=0&end=100&ranged=1');
    expect(pumpUrlStats().idleSockets).toBeGreaterThan(0);
    const gets0 = gets;
    const accepted0 = accepted;
    const r = await get('/?start=5&end=50005&ranged=1&fault=stale');
    expect(r.error).toBeUndefined();
    expect(r.body.equals(body.subarray(5, 50005))).toBe(true);
    expect(gets - gets0).toBe(2);
    expect(accepted - accepted0).toBe(1);
    await settled();
  });

  it('clients that go away mid-body close their GETs at the gateway; clients that do not read hold bounded memory', async () => {
    const clients = 8;
    const reqs: http.ClientRequest[] = [];
    const got = await Promise.all(
      Array.from(
        { length: clients },
        () =>
          new Promise<number>((resolve) => {
            const req = http.get({ host: '127.0.0.1', port, path: '/?path=/big', agent: false }, (res) => {
              let n = 0;
              res.once('data', (c: Buffer) => {
                n += c.length;
                res.pause(); // then reads nothing: the gateway's socket must pause, not pile bytes up here
                resolve(n);
              });
            });
            reqs.push(req);
          }),
      ),
    );
    expect(got.every((n) => n > 0)).toBe(true);
    await sleep(500);
    const s = pumpUrlStats();
    expect(s.active).toBe(clients);
    // per response: one granule on its client socket, a second only within BUDGET
    expect(s.inUseBytes).toBeLessThanOrEqual(BUDGET + clients * GRANULE);
    expect(s.sockets - s.idleSockets).toBe(clients);
    for (const r of reqs) r.destroy();
    await settled();
  });
});
