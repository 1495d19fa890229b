/**
 * listenApp against clients that never let go: a few hundred slow-loris
 * sockets (half a request head, then a byte a second, never reading), bad
 * requests and CONNECTs whose answer is never read, a keep-alive client that
 * stops reading a large body, and the connection cap. The hostile clients run
 * in a child process so that /proc/self/fd here counts the server's
 * descriptors alone.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createServer, listenApp, type Listening } from '../../../server/http/index.js';
import { defaultMaxConnections } from '../../../server/http/listen.js';
import { makeFixture, type Fixture } from './fixture.js';
import { raw } from './client.js';

let fx: Fixture;
const open: Listening[] = [];
const children: ChildProcess[] = [];
const BIG = 32 * 1024 * 1024; // well beyond loopback socket buffers, so a client that stops reading stalls the server's writes

beforeAll(async () => {
  fx = await makeFixture({ bigSize: BIG });
});
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const l of open.splice(0)) await l.close(100);
});
afterAll(async () => {
  await fx?.store.close();
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

const fds = (): number => readdirSync('/proc/self/fd').length;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * N sockets that write `head` and then one byte of `trickle` a second, never
 * read (paused, half-open allowed, so the server's FIN is never answered) and
 * never close. Prints "ready" once every socket is connected and has written.
 */
const HOSTILE = `
const net = require('node:net');
const [port, n, head, trickle] = [Number(process.argv[1]), Number(process.argv[2]), process.argv[3], process.argv[4]];
const socks = [];
let connected = 0;
for (let i = 0; i < n; i++) {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  s.pause();
  s.on('connect', () => { s.write(head); if (++connected === n) process.stdout.write('ready\\n'); });
  socks.push(s);
}
if (trickle) setInterval(() => { for (const s of socks) if (!s.destroyed) s.write(trickle); }, 1000);
setInterval(() => {}, 1 << 30);
`;

async function hostile(port: number, n: number, head: string, trickle = ''): Promise<void> {
  const child = spawn(process.execPath, ['-e', HOSTILE, String(port), String(n), head, trickle], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`hostile clients exited early (${code})`)));
  });
}

/**
 * Polls the server's descriptor count until it has risen by `rise` and come
 * back to `baseline` (a little slack for the test runner's own), or
 * `deadlineMs` passes. `ms` counts from the call.
 */
async function fdsRiseAndFall(baseline: number, rise: number, deadlineMs: number): Promise<{ ms: number; peak: number; last: number }> {
  const t0 = Date.now();
  let peak = 0;
  let last = 0;
  while (Date.now() - t0 < deadlineMs) {
    last = fds();
    peak = Math.max(peak, last);
    if (peak >= baseline + rise && last <= baseline + 5) return { ms: Date.now() - t0, peak, last };
    await sleep(50);
  }
  return { ms: Infinity, peak, last };
}

async function serve(opts: Partial<Parameters<typeof listenApp>[1]>): Promise<Listening> {
  const l = await listenApp(createServer({ adminToken: null, passthrough: false }, { store: fx.store }), { listen: '127.0.0.1:0', ...opts });
  open.push(l);
  expect((await raw(l.port, '/healthz')).status).toBe(200); // opens what serving opens lazily, before the baseline
  return l;
}

it('300 slow-loris clients (half a head, a byte a second, never reading) are cut within the header timeout; others are served meanwhile', async () => {
  const l = await serve({ headersTimeoutMs: 2000, idleTimeoutMs: 30_000 });
  await sleep(200);
  const baseline = fds();
  const t0 = Date.now();
  await hostile(l.port, 300, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ', 'a');
  const served = raw(l.port, '/healthz');
  const back = await fdsRiseAndFall(baseline, 250, 15_000);
  expect((await served).status).toBe(200);
  expect(back.peak).toBeGreaterThanOrEqual(baseline + 250); // the attack really held descriptors
  expect(back.last).toBeLessThanOrEqual(baseline + 5); // before the fix they were held for as long as the clients liked
  // the 2 s header timeout, with generous slack for a loaded machine (connecting 300 sockets included)
  expect(Date.now() - t0).toBeLessThan(2000 + 6000);
}, 30_000);

it('connections that send nothing are cut at the header timeout, not the idle timeout (Node counts from the connection)', async () => {
  const l = await serve({ headersTimeoutMs: 2000, idleTimeoutMs: 30_000 });
  await sleep(200);
  const baseline = fds();
  const t0 = Date.now();
  await hostile(l.port, 100, '');
  const back = await fdsRiseAndFall(baseline, 90, 15_000);
  expect(back.last).toBeLessThanOrEqual(baseline + 5);
  expect(Date.now() - t0).toBeLessThan(2000 + 5000);
  const metrics = (await raw(l.port, '/metrics')).body.toString();
  expect(metrics).toMatch(/^airlock_http_connections_cut_total\{reason="request_timeout"\} 100$/m);
}, 30_000);

it('a client silent until just before the deadline, then trickling, is still cut at the header timeout from its connection', async () => {
  // Node restarts a head's deadline at its first byte; without a deadline of its own the connection would get it twice
  const l = await serve({ headersTimeoutMs: 3000, idleTimeoutMs: 30_000 });
  const t0 = Date.now();
  const s = net.connect({ port: l.port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  s.pause(); // never reads
  const closed = new Promise((r) => s.once('close', r));
  let trickle: NodeJS.Timeout | undefined;
  setTimeout(() => {
    s.write('GET /healthz HTTP/1.1\r\nX-Slow: ');
    trickle = setInterval(() => !s.destroyed && s.write('a'), 250);
  }, 2700);
  await closed;
  clearInterval(trickle);
  const ms = Date.now() - t0;
  expect(ms).toBeGreaterThanOrEqual(2700);
  expect(ms).toBeLessThan(3000 + 1500); // not ~5.7 s: 2.7 s of silence plus a fresh 3 s
}, 15_000);

it('over TLS: a handshake never begun, and a head trickled after it, are both cut at the header timeout', async () => {
  const cert = join(fx.dir, 'cert.pem');
  const key = join(fx.dir, 'key.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ed25519', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1', '-keyout', key, '-out', cert]);
  const l = await listenApp(createServer({ adminToken: null, passthrough: false }, { store: fx.store }), {
    listen: '127.0.0.1:0', tls: { cert, key }, headersTimeoutMs: 2000, idleTimeoutMs: 30_000,
  });
  open.push(l);
  await sleep(200);
  const baseline = fds();
  const t0 = Date.now();
  await hostile(l.port, 50, ''); // plain TCP, no ClientHello: Node's handshake timeout was 120 s
  const s = tls.connect({ port: l.port, host: '127.0.0.1', rejectUnauthorized: false });
  s.on('error', () => {});
  await new Promise((r) => s.once('secureConnect', r));
  const t1 = Date.now();
  s.write('GET /healthz HTTP/1.1\r\nX-Slow: ');
  const trickle = setInterval(() => !s.destroyed && s.write('a'), 250);
  const closed = new Promise((r) => s.once('close', r));
  const back = await fdsRiseAndFall(baseline, 45, 10_000);
  expect(back.last).toBeLessThanOrEqual(baseline + 5 + 1); // this process's own TLS client may still be open
  expect(Date.now() - t0).toBeLessThan(2000 + 5000);
  await closed;
  clearInterval(trickle);
  expect(Date.now() - t1).toBeLessThan(2000 + 3000);
}, 30_000);

it('bad requests and CONNECTs whose answer is never read do not keep their sockets', async () => {
  const l = await serve({ headersTimeoutMs: 2000, idleTimeoutMs: 30_000 });
  await sleep(200);
  const baseline = fds();
  await hostile(l.port, 100, 'NOT A REQUEST\r\n\r\n', 'a');
  await hostile(l.port, 100, 'CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n', 'a');
  const back = await fdsRiseAndFall(baseline, 150, 10_000);
  expect(back.last).toBeLessThanOrEqual(baseline + 5);
  expect(back.ms).toBeLessThan(2000 + 4000); // answered at once, then at most a 1 s linger
  const metrics = (await raw(l.port, '/metrics')).body.toString();
  expect(metrics).toMatch(/^airlock_http_connections_cut_total\{reason="bad_request"\} 100$/m);
}, 30_000);

it('a client that reads its error answer still gets it: 431 for a head too large, 400 for garbage', async () => {
  const l = await serve({ headersTimeoutMs: 2000, idleTimeoutMs: 30_000 });
  expect((await raw(l.port, '/healthz', { headers: { 'X-Big': 'a'.repeat(20_000) } })).status).toBe(431);
  const s = net.connect({ port: l.port, host: '127.0.0.1' });
  let got = '';
  s.on('data', (d: Buffer) => (got += d.toString()));
  s.write('NOT A REQUEST\r\n\r\n');
  await new Promise((r) => s.once('close', r));
  expect(got).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
});

it('a keep-alive client that stops reading a large body is cut after the idle timeout, its blob closed too', async () => {
  const l = await serve({ headersTimeoutMs: 2000, idleTimeoutMs: 1500 });
  await sleep(200);
  const baseline = fds();
  const t0 = Date.now();
  await hostile(l.port, 5, 'GET /files/3.6.2/components/big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  const back = await fdsRiseAndFall(baseline, 10, 10_000); // sockets and blob files held while the writes are stalled
  expect(back.peak).toBeGreaterThanOrEqual(baseline + 10);
  expect(back.last).toBeLessThanOrEqual(baseline + 5);
  expect(Date.now() - t0).toBeLessThan(1500 + 5000);
}, 30_000);

it('a request head that arrives slowly but within the header timeout is answered', async () => {
  const l = await serve({ headersTimeoutMs: 2000, idleTimeoutMs: 30_000 });
  const s = net.connect({ port: l.port, host: '127.0.0.1' });
  const got: Buffer[] = [];
  s.on('data', (d: Buffer) => got.push(d));
  const closed = new Promise((r) => s.once('close', r));
  s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  await sleep(800); // well within the timeout: the deadline is not cut short by more than the check interval
  s.write('Connection: close\r\n\r\n'); // write, not end: a half-closed client gets no answer
  await closed;
  expect(Buffer.concat(got).toString()).toMatch(/^HTTP\/1\.1 200 /);
});

const connections = (l: Listening): Promise<number> =>
  new Promise((resolve, reject) => l.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

async function until(what: () => Promise<boolean>, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!(await what())) {
    if (Date.now() - t0 > ms) throw new Error('condition not reached in time');
    await sleep(20);
  }
}

it('the connection cap closes connection N+1 at accept, and /metrics counts it', async () => {
  const l = await serve({ maxConnections: 5, headersTimeoutMs: 10_000 });
  await until(async () => (await connections(l)) === 0);
  const held = Array.from({ length: 5 }, () => net.connect({ port: l.port, host: '127.0.0.1' }).on('error', () => {}));
  await until(async () => (await connections(l)) === 5);

  const t0 = Date.now();
  const sixth = net.connect({ port: l.port, host: '127.0.0.1' });
  sixth.on('error', () => {}); // a reset is as good as a close here
  const got: Buffer[] = [];
  sixth.on('data', (d: Buffer) => got.push(d));
  sixth.on('connect', () => sixth.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
  await new Promise((r) => sixth.once('close', r));
  expect(Date.now() - t0).toBeLessThan(2000); // refused at once, not after a timeout
  expect(Buffer.concat(got).length).toBe(0);
  expect(await connections(l)).toBe(5);

  held[0]!.destroy();
  await until(async () => (await connections(l)) === 4);
  const metrics = (await raw(l.port, '/metrics')).body.toString();
  expect(metrics).toMatch(/^airlock_http_connections_refused_total 1$/m);
  expect(metrics).toMatch(/^airlock_http_connections_open 5$/m); // four held and this request
  expect(metrics).toMatch(/^airlock_http_connections_max 5$/m);
  for (const h of held) h.destroy();
});

it('the default cap is 1024, less when the descriptor limit could not hold two per connection', () => {
  const limits = (soft: string): (() => string) => () =>
    `Limit                     Soft Limit           Hard Limit           Units\nMax open files            ${soft}                524288               files\n`;
  expect(defaultMaxConnections(limits('524288'))).toBe(1024);
  expect(defaultMaxConnections(limits('unlimited'))).toBe(1024);
  expect(defaultMaxConnections(limits('1024'))).toBe(448);
  expect(defaultMaxConnections(limits('64'))).toBe(16);
  expect(defaultMaxConnections(() => { throw new Error('ENOENT'); })).toBe(1024);
  expect(defaultMaxConnections()).toBeGreaterThanOrEqual(16); // this machine's
});
