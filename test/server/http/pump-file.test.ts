/**
 * pumpFile against a real socket: exact bytes for ranges across granule and
 * chunk edges, every descriptor and buffer given back after complete,
 * aborted and short-file responses, and body memory bounded with many
 * clients that do not read.
 */
import { randomBytes } from 'node:crypto';
import { openSync, truncateSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUDGET, GRANULE, pumpFile, pumpStats } from '../../../server/http/pump-file.js';

let dir: string;
let file: string;
/** sparse, larger than loopback socket buffers, so a client that does not read really holds its response */
let sparse: string;
let body: Buffer;
let server: http.Server;
let port: number;

/** GET /?start=S&end=E (end exclusive; may be past the file to simulate a shrunk file); /sparse for the big one */
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-pump-'));
  file = join(dir, 'blob');
  body = randomBytes(3 * 1024 * 1024 + 5);
  writeFileSync(file, body);
  sparse = join(dir, 'sparse');
  writeFileSync(sparse, '');
  truncateSync(sparse, 64 * 1024 * 1024);
  server = http.createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x').searchParams;
    const big = req.url?.startsWith('/sparse');
    const start = Number(q.get('start') ?? 0);
    const end = Number(q.get('end') ?? (big ? 64 * 1024 * 1024 : body.length));
    res.writeHead(200, { 'Content-Length': end - start });
    pumpFile(openSync(big ? sparse : file, 'r'), start, end, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await rm(dir, { recursive: true, force: true });
});

function get(path: string, agent = false as http.Agent | false): Promise<{ status: number; body: Buffer; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', (e) => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), error: e.message }));
    });
    req.on('error', (e) => resolve({ status: 0, body: Buffer.alloc(0), error: e.message }));
  });
}

async function settled(): Promise<void> {
  const t0 = Date.now();
  while ((pumpStats().active > 0 || pumpStats().inUseBytes > 0) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
  expect(pumpStats()).toMatchObject({ active: 0, inUseBytes: 0 });
  expect(pumpStats().pooledBytes).toBeLessThanOrEqual(BUDGET);
}

describe('pumpFile', () => {
  it('sends exactly the bytes asked for, across granule and chunk edges', async () => {
    const ranges: Array<[number, number]> = [
      [0, body.length],
      [0, 1],
      [GRANULE - 1, GRANULE + 1],
      [1, 16 * GRANULE + 1],
      [5, 5 + 16 * GRANULE],
      [body.length - 3, body.length],
      [1000, body.length - 1000],
    ];
    const got = await Promise.all(ranges.map(([s, e]) => get(`/?start=${s}&end=${e}`)));
    got.forEach((r, i) => {
      const [s, e] = ranges[i]!;
      expect(r.status).toBe(200);
      expect(r.body.equals(body.subarray(s, e)), `range ${s}-${e}`).toBe(true);
    });
    await settled();
  });

  it('a file shorter than promised cuts the response (never pads), and gives everything back', async () => {
    const r = await get(`/?start=0&end=${body.length + 10}`);
    expect(r.body.length).toBeLessThan(body.length + 10);
    expect(r.body.equals(body.subarray(0, r.body.length))).toBe(true);
    await settled();
  });

  it('a client that goes away mid-body frees its descriptor and buffers', async () => {
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
    });
    await settled();
  });

  it('100 clients that do not read hold no more body memory than the budget plus one granule each', async () => {
    const agent = new http.Agent({ keepAlive: false, maxSockets: 100 });
    const reqs: http.ClientRequest[] = [];
    const all = await new Promise<http.IncomingMessage[]>((resolve) => {
      const paused: http.IncomingMessage[] = [];
      for (let i = 0; i < 100; i++) {
        const req = http.get({ host: '127.0.0.1', port, path: '/sparse', agent }, (res) => {
          res.pause();
          paused.push(res);
          if (paused.length === 100) resolve(paused);
        });
        req.on('error', () => {});
        reqs.push(req);
      }
    });
    // let every response fill its socket buffers and stall
    await new Promise((r) => setTimeout(r, 500));
    const s = pumpStats();
    expect(s.active).toBe(100);
    expect(s.inUseBytes).toBeLessThanOrEqual(BUDGET + s.active * GRANULE);
    expect(s.inUseBytes).toBeGreaterThan(0);
    expect(all).toHaveLength(100);
    for (const r of reqs) r.destroy();
    agent.destroy();
    await settled();
  });
});
