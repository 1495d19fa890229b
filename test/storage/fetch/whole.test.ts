import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpClient } from '../../../storage/fetch/http.js';
import { fetchWhole } from '../../../storage/fetch/whole.js';

let server: Server;
let base = '';
const timers = new Set<NodeJS.Timeout>();
beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/ok') return void res.end('{"hello":1}');
    if (req.url === '/big') return void res.end(Buffer.alloc(2000, 'x'));
    if (req.url === '/trickle') {
      // a byte every 100 ms: never stalls, never finishes in time
      res.writeHead(200, { 'Content-Length': '1000' });
      const t = setInterval(() => res.write('x'), 100);
      timers.add(t);
      res.on('close', () => clearInterval(t));
      return;
    }
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const t of timers) clearInterval(t);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const http = () => createHttpClient({ env: {}, proxy: null });

describe('fetchWhole', () => {
  it('returns the whole answer', async () => {
    expect((await fetchWhole(http(), `${base}/ok`, { cap: 100, deadlineMs: 5000, what: 'envelope' })).toString()).toBe('{"hello":1}');
  });

  it('a trickled answer is EUPSTREAM "too slow" at the deadline, not when it would end', async () => {
    const t0 = Date.now();
    const err = await fetchWhole(http(), `${base}/trickle`, { cap: 5000, deadlineMs: 600, what: 'envelope' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EUPSTREAM' });
    expect((err as Error).message).toMatch(/^envelope http:.*too slow: no complete answer within 0\.6 s/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('an answer above the cap is EMANIFEST; a 404 is ENOTFOUND naming what was asked', async () => {
    await expect(fetchWhole(http(), `${base}/big`, { cap: 1000, deadlineMs: 5000, what: 'envelope' })).rejects.toMatchObject({ code: 'EMANIFEST' });
    const nf = await fetchWhole(http(), `${base}/nope`, { cap: 1000, deadlineMs: 5000, what: 'cache' }).catch((e: unknown) => e as Error);
    expect(nf).toMatchObject({ code: 'ENOTFOUND' });
    expect(nf.message).toMatch(/^cache /);
  });

  it('a caller abort is not reported as too slow', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = await fetchWhole(http(), `${base}/trickle`, { cap: 5000, deadlineMs: 5000, what: 'envelope', signal: ac.signal }).catch((e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'EUPSTREAM' });
    expect(err.message).not.toMatch(/too slow/);
  });
});
