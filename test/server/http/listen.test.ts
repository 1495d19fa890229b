/** listenApp: TLS with a real (self-signed, openssl) certificate, and pass-through proxying when switched on. */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createServer, listenApp, type Listening } from '../../../server/http/index.js';
import { makeFixture, type Fixture } from './fixture.js';
import { raw } from './client.js';

const pexec = promisify(execFile);
let fx: Fixture;
let dir: string;
const open: Listening[] = [];
const upstreams: http.Server[] = [];

beforeAll(async () => {
  fx = await makeFixture({ bigSize: 1024 * 1024 });
  dir = await mkdtemp(join(tmpdir(), 'airlock-listen-'));
});
afterAll(async () => {
  for (const l of open) await l.close(100);
  for (const u of upstreams) await new Promise((r) => (u.closeAllConnections(), u.close(r)));
  await fx?.store.close();
  if (fx) await rm(fx.dir, { recursive: true, force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('serves over TLS with the configured cert and key', async () => {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await pexec('openssl', ['req', '-x509', '-newkey', 'ed25519', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1', '-keyout', key, '-out', cert]);
  const l = await listenApp(createServer({ adminToken: null, passthrough: false }, { store: fx.store }), { listen: '127.0.0.1:0', tls: { cert, key } });
  open.push(l);
  expect(l.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  const { stdout } = await pexec('curl', ['-sS', '--cacert', cert, '-o', '/dev/null', '-w', '%{http_code}', `https://127.0.0.1:${l.port}/files/3.6.2/components/app.tgz`]);
  expect(stdout).toBe('200');
});

it('pass-through forwards non-staged proxy requests upstream when switched on', async () => {
  const up = http.createServer((req, res) => res.end(`upstream saw ${req.url}`));
  upstreams.push(up);
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const upPort = (up.address() as net.AddressInfo).port;
  const l = await listenApp(createServer({ adminToken: null, passthrough: true }, { store: fx.store }), { listen: '127.0.0.1:0' });
  open.push(l);
  const r = await raw(l.port, `http://127.0.0.1:${upPort}/other.txt`, { headers: { Host: `127.0.0.1:${upPort}` } });
  expect(r.status).toBe(200);
  expect(r.body.toString()).toBe('upstream saw /other.txt');
  const off = await listenApp(createServer({ adminToken: null, passthrough: false }, { store: fx.store }), { listen: '127.0.0.1:0' });
  open.push(off);
  expect((await raw(off.port, `http://127.0.0.1:${upPort}/other.txt`)).status).toBe(403);
});

it('close() waits for a response in flight, then resolves', async () => {
  const l = await listenApp(createServer({ adminToken: null, passthrough: false }, { store: fx.store }), { listen: '127.0.0.1:0' });
  const got = raw(l.port, '/files/3.6.2/components/big.bin');
  await new Promise((r) => setTimeout(r, 20));
  await l.close(5000);
  const r = await got;
  expect(r.status).toBe(200);
  expect(r.body.length).toBe(1024 * 1024);
});
