/**
 * `airlock serve` behind the real nginx with the shipped snippet
 * (docs/examples/nginx-airlock.conf) and `accel_redirect: /_airlock_blobs/`:
 * nginx proxies every request to airlock, airlock answers blob and file
 * bodies with X-Accel-Redirect and nginx sends the file. GET, HEAD, Range,
 * If-Range and ETag through nginx give airlock's bytes and headers; a missing
 * blob is airlock's 404; airlock reached directly still sends the bytes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/world/cache.js';
import { freePorts, httpStatus, waitUntil } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { makeFixture, type Fixture } from '../server/http/fixture.js';

const CLI = join(repoRoot(), 'dist/server/cli/main.js');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let fx: Fixture;
let airlock: ChildProcess;
let airlockPort: number;
let nginx: Server;
let front: string;
let big: Buffer;
let bigHex: string;
let airlockLog = '';

async function get(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const r = await fetch(url, init);
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}

beforeAll(async () => {
  fx = await makeFixture({ bigSize: 3 * 1024 * 1024 + 7 });
  big = readFileSync(fx.local.get('components/big.bin')!);
  bigHex = sha(big);
  // nginx's worker runs as nobody: it must reach the blobs the way a packaged cache dir allows
  chmodSync(fx.dir, 0o755);
  const cacheDir = join(fx.dir, 'cache');
  const cfg = join(fx.dir, 'airlock.yml');
  writeFileSync(cfg, `cache_dir: ${cacheDir}\naccel_redirect: /_airlock_blobs/\n`);
  airlock = spawn(process.execPath, [CLI, 'serve', '--config', cfg, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  airlock.stderr!.on('data', (d: Buffer) => (airlockLog += d.toString()));
  airlockPort = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${airlockLog}`)), 20_000);
    airlock.stdout!.on('data', (d: Buffer) => {
      airlockLog += d.toString();
      const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(airlockLog);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });

  const [port] = await freePorts(1);
  const d = join(fx.dir, 'nginx');
  mkdirSync(join(d, 'tmp'), { recursive: true });
  const snippet = readFileSync(join(repoRoot(), 'docs/examples/nginx-airlock.conf'), 'utf8')
    .replaceAll('127.0.0.1:7070', `127.0.0.1:${airlockPort}`)
    .replaceAll('/srv/airlock/cache/blobs/', `${cacheDir}/blobs/`)
    .replace('listen 80;', `listen 127.0.0.1:${port};`)
    .replace(/access_log [^;]*;/, `access_log ${d}/access.log;`);
  writeFileSync(
    join(d, 'nginx.conf'),
    `daemon off; worker_processes 1; pid ${d}/nginx.pid; error_log ${d}/error.log info;
events { worker_connections 64; }
http { default_type application/octet-stream;
  client_body_temp_path ${d}/tmp/body; proxy_temp_path ${d}/tmp/proxy; fastcgi_temp_path ${d}/tmp/fcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi; scgi_temp_path ${d}/tmp/scgi;
${snippet}
}
`,
  );
  nginx = startServer('nginx', 'nginx', ['-c', join(d, 'nginx.conf'), '-p', `${d}/`, '-e', join(d, 'error.log')], join(d, 'stderr.log'));
  front = `http://127.0.0.1:${port}`;
  await waitUntil('nginx', async () => (await httpStatus(`${front}/healthz`)) > 0, nginx.exited);
}, 120_000);

afterAll(async () => {
  await nginx?.stop();
  airlock?.kill('SIGTERM');
  await fx?.store.close();
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

describe('airlock serve behind nginx with X-Accel-Redirect', () => {
  it('airlock answers a front end with the redirect and no body, and a direct client with the bytes', async () => {
    const url = `http://127.0.0.1:${airlockPort}/blobs/sha256/${bigHex}`;
    const viaFront = await get(url, { headers: { 'X-Sendfile-Type': 'X-Accel-Redirect' } });
    expect(viaFront.status).toBe(200);
    expect(viaFront.headers.get('x-accel-redirect')).toBe(`/_airlock_blobs/sha256/${bigHex.slice(0, 2)}/${bigHex}`);
    expect(viaFront.body.length).toBe(0);
    const direct = await get(url);
    expect(direct.headers.get('x-accel-redirect')).toBeNull();
    expect(sha(direct.body)).toBe(bigHex);
  });

  it('GET through nginx: the blob, with airlock ETag, digest and caching headers', async () => {
    const r = await get(`${front}/blobs/sha256/${bigHex}`);
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(big.length);
    expect(sha(r.body)).toBe(bigHex);
    expect(r.headers.get('etag')).toBe(`"sha256:${bigHex}"`);
    expect(r.headers.get('docker-content-digest')).toBe(`sha256:${bigHex}`);
    expect(r.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(r.headers.get('content-type')).toBe('application/octet-stream');
    expect(r.headers.get('x-accel-redirect')).toBeNull();
    // nginx sent it: its access log has the full body for that request
    const log = readFileSync(join(fx.dir, 'nginx/access.log'), 'utf8');
    expect(log).toContain(`"GET /blobs/sha256/${bigHex} HTTP/1.1" 200 ${big.length}`);
  });

  it('a file by its release path through nginx, with its content type', async () => {
    const r = await get(`${front}/files/${fx.release}/components/big.bin`);
    expect(r.status).toBe(200);
    expect(sha(r.body)).toBe(bigHex);
    expect(r.headers.get('etag')).toBe(`"sha256:${bigHex}"`);
  });

  it('HEAD through nginx: the headers and length, no body', async () => {
    const r = await get(`${front}/blobs/sha256/${bigHex}`, { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(String(big.length));
    expect(r.headers.get('etag')).toBe(`"sha256:${bigHex}"`);
    expect(r.body.length).toBe(0);
  });

  it('Range and If-Range through nginx: exact bytes; a stale If-Range gets the whole body', async () => {
    const r = await get(`${front}/blobs/sha256/${bigHex}`, { headers: { Range: 'bytes=1048570-1048999' } });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe(`bytes 1048570-1048999/${big.length}`);
    expect(r.body.equals(big.subarray(1048570, 1049000))).toBe(true);
    const tail = await get(`${front}/blobs/sha256/${bigHex}`, { headers: { Range: 'bytes=-10' } });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(big.subarray(big.length - 10))).toBe(true);
    const same = await get(`${front}/blobs/sha256/${bigHex}`, { headers: { Range: 'bytes=5-9', 'If-Range': `"sha256:${bigHex}"` } });
    expect(same.status).toBe(206);
    expect(same.body.equals(big.subarray(5, 10))).toBe(true);
    const stale = await get(`${front}/blobs/sha256/${bigHex}`, { headers: { Range: 'bytes=5-9', 'If-Range': '"sha256:0000"' } });
    expect(stale.status).toBe(200);
    expect(sha(stale.body)).toBe(bigHex);
    const outside = await get(`${front}/blobs/sha256/${bigHex}`, { headers: { Range: `bytes=${big.length + 10}-` } });
    expect(outside.status).toBe(416);
    expect(outside.headers.get('content-range')).toBe(`bytes */${big.length}`);
  });

  it('If-None-Match through nginx is airlock 304', async () => {
    const r = await get(`${front}/blobs/sha256/${bigHex}`, { headers: { 'If-None-Match': `"sha256:${bigHex}"` } });
    expect(r.status).toBe(304);
    expect(r.body.length).toBe(0);
  });

  it('a blob not in the store is airlock 404 through nginx', async () => {
    const r = await get(`${front}/blobs/sha256/${'e'.repeat(64)}`);
    expect(r.status).toBe(404);
    expect(JSON.parse(r.body.toString()).error.code).toBe('ENOTFOUND');
    const f = await get(`${front}/files/${fx.release}/components/nope.bin`);
    expect(f.status).toBe(404);
  });

  it('the internal location is not reachable from outside (nginx 404)', async () => {
    const r = await get(`${front}/_airlock_blobs/sha256/${bigHex.slice(0, 2)}/${bigHex}`);
    expect(r.status).toBe(404);
    expect(r.body.length).toBeLessThan(1000);
  });
});
