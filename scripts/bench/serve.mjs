#!/usr/bin/env node
// Serving throughput of `airlock serve` against nginx (sendfile on) and
// Debian's docker-registry, on loopback, and airlock's peak RSS.
//
//   npm run build && node scripts/bench/serve.mjs [SIZE_MIB=1024] [SECONDS=10]
//
// 1. the same SIZE_MIB random blob from all three, 16 concurrent clients
//    (wrk -t2 -c16 -dSECONDS): aggregate bytes/s → ratios to nginx and registry
//    (targets ≥ 0.85× nginx, ≥ 1.0× registry);
// 2. an 8 KiB blob with wrk -c64: req/s ratio to nginx (target ≥ 0.5×);
// 3. airlock's peak RSS over the whole run (VmHWM; target ≤ 150 MiB).
// A bare node server piping the same files is measured too: the platform's ceiling.
// Best of ROUNDS (default 2) interleaved rounds, since loopback boxes are often shared.
// Each server logs its requests to a file, as in production. Ports are free
// ones picked at runtime; everything is on 127.0.0.1 and stopped at the end.
//
// Last figures (2-core box shared with other jobs, `flock /tmp/airlock-bench.lock
// node scripts/bench/serve.mjs 1024 10`, load average 2.1-2.6): big 1.70× nginx,
// 1.40× registry; 8 KiB 0.62× nginx; airlock peak RSS 136 MiB. The tree before the
// lean blob path and pooled file pump, same command, load 2.4-6.3: 1.04×, 0.88×,
// 0.43×, 190 MiB. serve-load.mjs 20 200 24: peak RSS 110 MiB at 697 MiB/s (was 252
// MiB at 317 MiB/s).
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const mib = Number(process.argv[2] ?? 1024);
const seconds = Number(process.argv[3] ?? 10);

const freePort = () =>
  new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitHttp(url) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => http.get(url, (res) => (res.resume(), r(res.statusCode < 500))).on('error', () => r(false)));
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`not ready: ${url}`);
}
const procs = [];
function start(cmd, args, log) {
  const p = spawn(cmd, args, { stdio: ['ignore', log, log] });
  procs.push(p);
  return p;
}
function hwm(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(s)[1]) * 1024;
}
function wrk(url, conns, threads = 2) {
  const out = execFileSync('wrk', [`-t${threads}`, `-c${conns}`, `-d${seconds}s`, '--timeout', '60s', url], { encoding: 'utf8' });
  const unit = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
  const t = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const errs = /Socket errors: (.*)|Non-2xx or 3xx responses: (\d+)/.exec(out);
  return { bytesPerSec: Number(t[1]) * unit[t[2]], rps, errors: errs ? errs[0] : null };
}

async function writeRandom(file, size) {
  const out = createWriteStream(file);
  const h = createHash('sha256');
  const block = randomBytes(Math.min(size, 1024 * 1024));
  for (let left = size, i = 0; left > 0; i++) {
    const b = Buffer.from(block.subarray(0, Math.min(left, block.length)));
    if (b.length >= 4) b.writeUInt32LE(i, 0);
    h.update(b);
    if (!out.write(b)) await new Promise((r) => out.once('drain', r));
    left -= b.length;
  }
  await new Promise((r) => out.end(r));
  return h.digest('hex');
}

function pushBlob(port, repo, file, sha256, size) {
  return new Promise((resolve, reject) => {
    const post = http.request({ host: '127.0.0.1', port, method: 'POST', path: `/v2/${repo}/blobs/uploads/` }, (res) => {
      res.resume();
      const loc = new URL(res.headers.location, `http://127.0.0.1:${port}`);
      loc.searchParams.set('digest', `sha256:${sha256}`);
      const put = http.request(
        { host: '127.0.0.1', port, method: 'PUT', path: loc.pathname + loc.search, headers: { 'Content-Length': size, 'Content-Type': 'application/octet-stream' } },
        (r2) => (r2.resume(), r2.statusCode === 201 ? resolve() : reject(new Error(`registry PUT ${r2.statusCode}`))),
      );
      put.on('error', reject);
      createReadStream(file).pipe(put);
    });
    post.on('error', reject);
    post.end();
  });
}

const B = await mkdtemp(join(tmpdir(), 'airlock-bench-serve-'));
try {
  mkdirSync(join(B, 'www'));
  const bigFile = join(B, 'www/big.bin');
  const smallFile = join(B, 'www/small.bin');
  const big = await writeRandom(bigFile, mib * 1024 * 1024);
  const small = await writeRandom(smallFile, 8192);
  chmodSync(B, 0o755);
  execFileSync('chmod', ['-R', 'a+rX', join(B, 'www')]);

  // airlock: ingest both into a fresh store
  const { openStore } = await import(pathToFileURL(join(root, 'dist/storage/index.js')).href);
  const store = await openStore({ cacheDir: join(B, 'cache'), write: true });
  await store.ingestStream({ sha256: big, size: mib * 1024 * 1024 }, createReadStream(bigFile, { highWaterMark: 1 << 20 }));
  await store.ingestStream({ sha256: small, size: 8192 }, createReadStream(smallFile));
  await store.close();
  const [pa, pn, pr, pb] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // the platform's own ceiling: a bare node http server piping the same files (no routing, no logging)
  writeFileSync(join(B, 'bare.mjs'), `import http from 'node:http'; import fs from 'node:fs';
const files = { '/big.bin': ${JSON.stringify(bigFile)}, '/small.bin': ${JSON.stringify(smallFile)} };
http.createServer((req, res) => { const f = files[req.url]; if (!f) { res.statusCode = 404; return res.end(); }
  res.setHeader('content-length', fs.statSync(f).size); fs.createReadStream(f, { highWaterMark: 256 * 1024 }).pipe(res);
}).listen(${pb}, '127.0.0.1');`);
  start(process.execPath, [join(B, 'bare.mjs')], 'ignore');
  const airlock = start(process.execPath, [join(root, 'dist/server/cli/main.js'), 'serve', '--cache-dir', join(B, 'cache'), '--listen', `127.0.0.1:${pa}`], openSync(join(B, 'airlock.log'), 'w'));

  // nginx, sendfile on, one worker (airlock is one process too)
  mkdirSync(join(B, 'nginx/tmp'), { recursive: true });
  writeFileSync(join(B, 'nginx/nginx.conf'), `daemon off; worker_processes 1; pid ${B}/nginx/nginx.pid; error_log ${B}/nginx/error.log;
events { worker_connections 1024; }
http { sendfile on; tcp_nopush on; access_log ${B}/nginx/access.log; default_type application/octet-stream;
  client_body_temp_path ${B}/nginx/tmp/body; proxy_temp_path ${B}/nginx/tmp/proxy; fastcgi_temp_path ${B}/nginx/tmp/fcgi;
  uwsgi_temp_path ${B}/nginx/tmp/uwsgi; scgi_temp_path ${B}/nginx/tmp/scgi;
  server { listen 127.0.0.1:${pn}; root ${B}/www; } }
`);
  start('nginx', ['-c', join(B, 'nginx/nginx.conf'), '-p', join(B, 'nginx/'), '-e', join(B, 'nginx/error.log')], 'ignore');

  // docker-registry
  mkdirSync(join(B, 'registry/data'), { recursive: true });
  writeFileSync(join(B, 'registry/config.yml'), `version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: ${B}/registry/data}}
http: {addr: "127.0.0.1:${pr}", secret: bench}
`);
  start('docker-registry', ['serve', join(B, 'registry/config.yml')], openSync(join(B, 'registry.log'), 'w'));

  await waitHttp(`http://127.0.0.1:${pa}/healthz`);
  await waitHttp(`http://127.0.0.1:${pn}/small.bin`);
  await waitHttp(`http://127.0.0.1:${pr}/v2/`);
  await waitHttp(`http://127.0.0.1:${pb}/small.bin`);
  await pushBlob(pr, 'bench/blob', bigFile, big, mib * 1024 * 1024);
  await pushBlob(pr, 'bench/blob', smallFile, small, 8192);

  const urls = {
    airlock: { big: `http://127.0.0.1:${pa}/blobs/sha256/${big}`, small: `http://127.0.0.1:${pa}/blobs/sha256/${small}` },
    nginx: { big: `http://127.0.0.1:${pn}/big.bin`, small: `http://127.0.0.1:${pn}/small.bin` },
    registry: { big: `http://127.0.0.1:${pr}/v2/bench/blob/blobs/sha256:${big}`, small: `http://127.0.0.1:${pr}/v2/bench/blob/blobs/sha256:${small}` },
    'bare-node': { big: `http://127.0.0.1:${pb}/big.bin`, small: `http://127.0.0.1:${pb}/small.bin` },
  };
  const res = {};
  const rounds = Number(process.env.ROUNDS ?? 2);
  for (let round = 1; round <= rounds; round++) {
    for (const [name, u] of Object.entries(urls)) {
      const b = wrk(u.big, 16);
      if (name === 'airlock') console.log(`airlock peak RSS after the big-blob run: ${(hwm(airlock.pid) / 2 ** 20).toFixed(0)} MiB`);
      await sleep(500);
      const s = wrk(u.small, 64);
      await sleep(500);
      console.log(`round ${round} ${name.padEnd(9)} ${mib} MiB blob, 16 clients: ${(b.bytesPerSec / 2 ** 20).toFixed(0)} MiB/s${b.errors ? ` (${b.errors})` : ''}; 8 KiB, 64 conns: ${s.rps.toFixed(0)} req/s${s.errors ? ` (${s.errors})` : ''}`);
      const prev = res[name];
      res[name] = {
        big: !prev || b.bytesPerSec > prev.big.bytesPerSec ? b : prev.big,
        small: !prev || s.rps > prev.small.rps ? s : prev.small,
      };
    }
  }
  const peak = hwm(airlock.pid);
  const fmt = (x) => `${x.toFixed(2)}×`;
  const summary = {
    bigVsNginx: res.airlock.big.bytesPerSec / res.nginx.big.bytesPerSec,
    bigVsRegistry: res.airlock.big.bytesPerSec / res.registry.big.bytesPerSec,
    smallVsNginx: res.airlock.small.rps / res.nginx.small.rps,
    smallVsRegistry: res.airlock.small.rps / res.registry.small.rps,
    bigVsBareNode: res.airlock.big.bytesPerSec / res['bare-node'].big.bytesPerSec,
    smallVsBareNode: res.airlock.small.rps / res['bare-node'].small.rps,
    airlockPeakRssMiB: peak / 2 ** 20,
  };
  console.log(
    `ratios: big ${fmt(summary.bigVsNginx)} nginx (target ≥ 0.85), ${fmt(summary.bigVsRegistry)} registry (target ≥ 1.0); ` +
      `8 KiB ${fmt(summary.smallVsNginx)} nginx (target ≥ 0.5), ${fmt(summary.smallVsRegistry)} registry; ` +
      `airlock peak RSS ${summary.airlockPeakRssMiB.toFixed(0)} MiB (target ≤ 150); vs bare node: big ${fmt(summary.bigVsBareNode)}, 8 KiB ${fmt(summary.smallVsBareNode)}; ` +
      `load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')} (best of ${rounds} interleaved rounds)`,
  );
  console.log(JSON.stringify({ sizeMiB: mib, seconds, results: res, summary }));
} finally {
  for (const p of procs) p.kill('SIGTERM');
  await sleep(1000);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  await rm(B, { recursive: true, force: true });
}
