#!/usr/bin/env node
// Load on `airlock serve`: 200 concurrent keep-alive clients for SECONDS
// (default 60; the test suite runs a 20 s version), mixing one big blob
// (1 request in 8) with small ones. Reports responses, errors (must be 0),
// MiB served and the server's peak RSS.
//
//   npm run build && node scripts/bench/serve-load.mjs [SECONDS=60] [CLIENTS=200] [BIG_MIB=24]
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const seconds = Number(process.argv[2] ?? 60);
const clients = Number(process.argv[3] ?? 200);
const bigMiB = Number(process.argv[4] ?? 24);

const B = await mkdtemp(join(tmpdir(), 'airlock-bench-load-'));
let server;
try {
  const { openStore } = await import(pathToFileURL(join(root, 'dist/storage/index.js')).href);
  const store = await openStore({ cacheDir: join(B, 'cache'), write: true });
  const blobs = [];
  for (const size of [bigMiB * 1024 * 1024, 173, 1500, 8192, 40_000, 300_000, 2_000_000]) {
    const body = randomBytes(size);
    const sha256 = createHash('sha256').update(body).digest('hex');
    await store.ingestStream({ sha256, size }, Readable.from([body]));
    blobs.push({ path: `/blobs/sha256/${sha256}`, size });
  }
  await store.close();

  server = spawn(process.execPath, [join(root, 'dist/server/cli/main.js'), 'serve', '--cache-dir', join(B, 'cache'), '--listen', '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const port = await new Promise((res, rej) => {
    let buf = '';
    server.stdout.on('data', (d) => {
      buf += d;
      const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(buf);
      if (m) res(Number(m[1]));
      if (buf.length > 1e6) buf = buf.slice(-1e5);
    });
    server.on('exit', (c) => rej(new Error(`airlock serve exited ${c}`)));
  });
  server.stdout.resume();
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))[1]) * 1024;
  let peak = rss();
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 250);
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  let ok = 0;
  let bytes = 0;
  const errors = [];
  const one = (b) =>
    new Promise((done) => {
      const req = http.get({ host: '127.0.0.1', port, path: b.path, agent }, (res) => {
        let n = 0;
        res.on('data', (c) => (n += c.length));
        res.on('end', () => {
          if (res.statusCode === 200 && n === b.size) ok++;
          else errors.push(`${b.path}: ${res.statusCode} ${n}/${b.size}`);
          bytes += n;
          done();
        });
        res.on('error', (e) => (errors.push(e.message), done()));
      });
      req.on('error', (e) => (errors.push(e.message), done()));
    });
  const deadline = Date.now() + seconds * 1000;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = c; Date.now() < deadline; i++) await one(i % 8 === 0 ? blobs[0] : blobs[1 + (i % (blobs.length - 1))]);
    }),
  );
  const secs = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  agent.destroy();
  console.log(
    `load: ${clients} clients, ${secs.toFixed(1)} s: ${ok} responses (${(ok / secs).toFixed(0)}/s), ${errors.length} errors, ` +
      `${(bytes / 2 ** 20).toFixed(0)} MiB (${(bytes / 2 ** 20 / secs).toFixed(0)} MiB/s), airlock peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`,
  );
  if (errors.length) console.log('first errors:', errors.slice(0, 5));
  process.exitCode = errors.length ? 1 : 0;
} finally {
  server?.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 500));
  await rm(B, { recursive: true, force: true });
}
