#!/usr/bin/env node
// Serving throughput and CPU of `airlock serve` against nginx (sendfile on) and
// Debian's docker-registry, on loopback, and airlock's peak RSS.
//
//   npm run build && flock /tmp/airlock-bench.lock node scripts/bench/serve.mjs [SIZE_MIB=1024] [SECONDS=10]
//   SERVERS=airlock,nginx (default: every one below) ROUNDS=2 CURL_TIMES=n
//
// 1. the same SIZE_MIB random blob from each, 16 concurrent clients
//    (wrk -t2 -c16 -dSECONDS): aggregate bytes/s and the server's CPU per GiB
//    served → ratios to nginx (targets ≥ 0.85× nginx's throughput, ≥ 1.0× registry's,
//    CPU per GiB ≤ 1.5× nginx's);
// 2. the same blob to 16 curl processes, each fetching it CURL_TIMES times (about
//    2 GiB each; clients that read at their own pace, as nodes do): throughput, CPU per GiB;
// 3. an 8 KiB blob with wrk -c64: req/s and CPU per request, ratio to nginx (target ≥ 0.5×);
// 4. airlock's peak RSS over the whole run (VmHWM; target ≤ 150 MiB).
// A server's CPU is user + sys of its process and every descendant (nginx's
// workers, cluster workers; both nginx and airlock for the offload setup) from
// /proc/PID/stat, before and after each run. On loopback the kernel's receive
// work is charged partly to the sender, so CPU per GiB is noisy on a shared box:
// each figure is printed with the load average when it was taken.
// A bare node server piping the same files is measured too: the platform's ceiling.
// Best of ROUNDS (default 2) interleaved rounds, since loopback boxes are often shared.
// Each server logs its requests to a file, as in production. Ports are free
// ones picked at runtime; everything is on 127.0.0.1 and stopped at the end.
//
// Last figures (2-core box shared with other jobs, `flock /tmp/airlock-bench.lock
// node scripts/bench/serve.mjs 256 10`, best of 2 rounds, load average 2.5-8.7):
// airlock big 1.69× nginx's throughput at 0.99× its CPU per GiB (0.205 vs 0.206 s),
// 16 curls 1.87× at 0.70× (0.190 vs 0.271 s); 8 KiB 0.70× nginx's req/s; 1.81× registry.
// --workers 2: 8 KiB 58446 req/s vs 47183 with one (1.24×), big 0.246 s CPU/GiB.
// Behind nginx with X-Accel-Redirect (airlock-accel): big 0.99× nginx, 1.15× its
// CPU/GiB; 16 curls 0.95×, 0.99×; 8 KiB 0.42× (every request takes the proxy hop).
// airlock peak RSS 154-192 MiB over the whole run then: at 30,000+ 8 KiB requests a
// second, pino's sonic-boom destination fell behind and its backlog of log strings was
// promoted to old space (80 MB before a full GC). With server/http/log-writer.ts, the same
// command at load 12-34 (nginx's own figures were off: 0.12 s CPU/GiB): airlock peak RSS
// 124 MiB (132 MiB in a second run, load 8-31); big 3676 MiB/s at 0.218 s CPU/GiB, 16 curls 3191 MiB/s at 0.213 s, 8 KiB
// 37435 req/s at 20 µs CPU/req (0.78× nginx's 47745). SERVERS=airlock ROUNDS=1, old and
// new build interleaved twice, load 8-22: peak 133/139 → 126/125 MiB, 8 KiB 32678/33502 →
// 36848/35543 req/s, 25/23 → 21/22 µs CPU/req. Earlier, `… 1024 10`, load 2.1-2.6: big
// 1.70× nginx, 1.40× registry; 8 KiB 0.62× nginx; peak RSS 136 MiB. serve-load.mjs 20 200
// 24: peak RSS 110 MiB at 697 MiB/s.
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, openSync, mkdirSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
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
// CPU of a server = user + sys of its process and every live descendant (nginx's workers,
// cluster workers), plus what its reaped children used (cutime + cstime), from /proc/PID/stat.
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
function statOf(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}
function treeCpuSeconds(roots) {
  const all = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
  const kids = new Map();
  for (const pid of all) {
    const st = statOf(pid);
    if (st) kids.set(st.ppid, [...(kids.get(st.ppid) ?? []), pid]);
  }
  let ticks = 0;
  const seen = new Set();
  const walk = (pid, isRoot) => {
    if (seen.has(pid)) return;
    seen.add(pid);
    const st = statOf(pid);
    if (!st) return;
    ticks += st.self + (isRoot ? st.children : 0);
    for (const k of kids.get(pid) ?? []) walk(k, false);
  };
  for (const r of roots) walk(r, true);
  return ticks / TICK;
}
/** 16 curl processes (nodes fetch one blob each, reading at their own pace), each fetching `url` `times` times */
async function curls(url, pids, clients, times) {
  const cpu0 = treeCpuSeconds(pids);
  const t0 = performance.now();
  const args = ['-sf', '--max-time', '600'];
  for (let i = 0; i < times; i++) args.push('-o', '/dev/null', url);
  const sizes = await Promise.all(
    Array.from({ length: clients }, () =>
      new Promise((res, rej) => {
        const c = spawn('curl', [...args, '-w', '%{size_download}\n'], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('exit', (code) => (code === 0 ? res(out.trim().split('\n').reduce((a, n) => a + Number(n), 0)) : rej(new Error(`curl exit ${code}`))));
      }),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  const cpu = treeCpuSeconds(pids) - cpu0;
  const bytes = sizes.reduce((a, n) => a + n, 0);
  return { bytesPerSec: bytes / secs, cpuSeconds: cpu, cpuPerGiB: cpu / (bytes / 2 ** 30), load: loadavg() };
}
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
function wrk(url, conns, pids, threads = 2) {
  const cpu0 = treeCpuSeconds(pids);
  const out = execFileSync('wrk', [`-t${threads}`, `-c${conns}`, `-d${seconds}s`, '--timeout', '60s', url], { encoding: 'utf8' });
  const cpu = treeCpuSeconds(pids) - cpu0;
  const unit = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
  const t = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const total = /(\d+) requests in ([\d.]+)(m?s), ([\d.]+)(B|KB|MB|GB) read/.exec(out);
  const bytes = Number(total[4]) * unit[total[5]];
  const requests = Number(total[1]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const errs = /Socket errors: (.*)|Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    bytesPerSec: Number(t[1]) * unit[t[2]],
    rps,
    errors: errs ? errs[0] : null,
    cpuSeconds: cpu,
    cpuPerGiB: cpu / (bytes / 2 ** 30),
    cpuUsPerRequest: (cpu * 1e6) / requests,
    load: loadavg(),
  };
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
  const [pa, pn, pr, pb, pw, pf, pfa] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
  const want = new Set((process.env.SERVERS ?? 'airlock,airlock-w2,airlock-accel,nginx,registry,bare-node').split(','));
  // the platform's own ceiling: a bare node http server piping the same files (no routing, no logging)
  writeFileSync(join(B, 'bare.mjs'), `import http from 'node:http'; import fs from 'node:fs';
const files = { '/big.bin': ${JSON.stringify(bigFile)}, '/small.bin': ${JSON.stringify(smallFile)} };
http.createServer((req, res) => { const f = files[req.url]; if (!f) { res.statusCode = 404; return res.end(); }
  res.setHeader('content-length', fs.statSync(f).size); fs.createReadStream(f, { highWaterMark: 256 * 1024 }).pipe(res);
}).listen(${pb}, '127.0.0.1');`);
  const servers = {}; // name → { pids: [...], big, small, ready }
  const cli = join(root, 'dist/server/cli/main.js');
  // airlock serve runs as packaging/systemd/airlock-serve.service starts it: with the NODE_OPTIONS that unit sets
  const unit = readFileSync(join(root, 'packaging/systemd/airlock-serve.service'), 'utf8');
  const unitNodeFlags = (/^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1] ?? '').split(/\s+/).filter(Boolean);
  const serveArgs = (port, extra = []) => [...unitNodeFlags, cli, 'serve', '--cache-dir', join(B, 'cache'), '--listen', `127.0.0.1:${port}`, ...extra];
  const tmpPaths = (d) => `client_body_temp_path ${d}/tmp/body; proxy_temp_path ${d}/tmp/proxy; fastcgi_temp_path ${d}/tmp/fcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi; scgi_temp_path ${d}/tmp/scgi;`;
  if (want.has('airlock')) {
    const p = start(process.execPath, serveArgs(pa), openSync(join(B, 'airlock.log'), 'w'));
    servers.airlock = { pids: [p.pid], rss: p.pid, big: `http://127.0.0.1:${pa}/blobs/sha256/${big}`, small: `http://127.0.0.1:${pa}/blobs/sha256/${small}` };
  }
  if (want.has('airlock-w2')) {
    const p = start(process.execPath, serveArgs(pw, ['--workers', '2']), openSync(join(B, 'airlock-w2.log'), 'w'));
    servers['airlock-w2'] = { pids: [p.pid], big: `http://127.0.0.1:${pw}/blobs/sha256/${big}`, small: `http://127.0.0.1:${pw}/blobs/sha256/${small}` };
  }
  if (want.has('airlock-accel')) {
    // nginx in front of airlock serve, bodies offloaded with X-Accel-Redirect (docs/examples/nginx-airlock.conf)
    writeFileSync(join(B, 'accel.yml'), 'accel_redirect: /_airlock_blobs/\n');
    const p = start(process.execPath, [...serveArgs(pfa), '--config', join(B, 'accel.yml')], openSync(join(B, 'airlock-accel.log'), 'w'));
    const d = join(B, 'nginx-front');
    mkdirSync(join(d, 'tmp'), { recursive: true });
    const snippet = readFileSync(join(root, 'docs/examples/nginx-airlock.conf'), 'utf8')
      .replaceAll('127.0.0.1:7070', `127.0.0.1:${pfa}`)
      .replaceAll('/srv/airlock/cache/blobs/', `${join(B, 'cache')}/blobs/`)
      .replace(/listen 80;/, `listen 127.0.0.1:${pf};`)
      .replace(/access_log [^;]*;/, `access_log ${d}/access.log;`);
    writeFileSync(join(d, 'nginx.conf'), `daemon off; worker_processes 1; pid ${d}/nginx.pid; error_log ${d}/error.log;
events { worker_connections 1024; }
http { default_type application/octet-stream; ${tmpPaths(d)}
${snippet}
}
`);
    const n = start('nginx', ['-c', join(d, 'nginx.conf'), '-p', `${d}/`, '-e', join(d, 'error.log')], 'ignore');
    servers['airlock-accel'] = { pids: [n.pid, p.pid], big: `http://127.0.0.1:${pf}/blobs/sha256/${big}`, small: `http://127.0.0.1:${pf}/blobs/sha256/${small}` };
  }
  if (want.has('nginx')) {
    // nginx, sendfile on, one worker (airlock is one process too)
    mkdirSync(join(B, 'nginx/tmp'), { recursive: true });
    writeFileSync(join(B, 'nginx/nginx.conf'), `daemon off; worker_processes 1; pid ${B}/nginx/nginx.pid; error_log ${B}/nginx/error.log;
events { worker_connections 1024; }
http { sendfile on; tcp_nopush on; access_log ${B}/nginx/access.log; default_type application/octet-stream;
  ${tmpPaths(join(B, 'nginx'))}
  server { listen 127.0.0.1:${pn}; root ${B}/www; } }
`);
    const n = start('nginx', ['-c', join(B, 'nginx/nginx.conf'), '-p', join(B, 'nginx/'), '-e', join(B, 'nginx/error.log')], 'ignore');
    servers.nginx = { pids: [n.pid], big: `http://127.0.0.1:${pn}/big.bin`, small: `http://127.0.0.1:${pn}/small.bin` };
  }
  if (want.has('registry')) {
    mkdirSync(join(B, 'registry/data'), { recursive: true });
    writeFileSync(join(B, 'registry/config.yml'), `version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: ${B}/registry/data}}
http: {addr: "127.0.0.1:${pr}", secret: bench}
`);
    const r = start('docker-registry', ['serve', join(B, 'registry/config.yml')], openSync(join(B, 'registry.log'), 'w'));
    await waitHttp(`http://127.0.0.1:${pr}/v2/`);
    await pushBlob(pr, 'bench/blob', bigFile, big, mib * 1024 * 1024);
    await pushBlob(pr, 'bench/blob', smallFile, small, 8192);
    servers.registry = { pids: [r.pid], big: `http://127.0.0.1:${pr}/v2/bench/blob/blobs/sha256:${big}`, small: `http://127.0.0.1:${pr}/v2/bench/blob/blobs/sha256:${small}` };
  }
  if (want.has('bare-node')) {
    const p = start(process.execPath, [join(B, 'bare.mjs')], 'ignore');
    servers['bare-node'] = { pids: [p.pid], big: `http://127.0.0.1:${pb}/big.bin`, small: `http://127.0.0.1:${pb}/small.bin` };
  }
  for (const s of Object.values(servers)) await waitHttp(s.small);

  const res = {};
  // each curl fetches the blob this many times: about 2 GiB per client
  const curlTimes = Number(process.env.CURL_TIMES ?? Math.max(1, Math.round(2048 / mib)));
  const rounds = Number(process.env.ROUNDS ?? 2);
  const mibs = (b) => (b / 2 ** 20).toFixed(0);
  for (let round = 1; round <= rounds; round++) {
    for (const [name, u] of Object.entries(servers)) {
      const b = wrk(u.big, 16, u.pids);
      await sleep(500);
      const c = await curls(u.big, u.pids, 16, curlTimes);
      await sleep(500);
      const s = wrk(u.small, 64, u.pids);
      await sleep(500);
      console.log(
        `round ${round} ${name.padEnd(13)} ${mib} MiB blob, wrk 16 conns: ${mibs(b.bytesPerSec)} MiB/s, ${b.cpuPerGiB.toFixed(3)} s CPU/GiB (load ${b.load})${b.errors ? ` (${b.errors})` : ''}; ` +
          `16 curls: ${mibs(c.bytesPerSec)} MiB/s, ${c.cpuPerGiB.toFixed(3)} s CPU/GiB (load ${c.load}); ` +
          `8 KiB, 64 conns: ${s.rps.toFixed(0)} req/s, ${s.cpuUsPerRequest.toFixed(0)} µs CPU/req (load ${s.load})${s.errors ? ` (${s.errors})` : ''}`,
      );
      const prev = res[name];
      // best of the rounds, each figure on its own: highest throughput, least CPU per GiB / per request
      res[name] = {
        big: !prev || b.bytesPerSec > prev.big.bytesPerSec ? b : prev.big,
        small: !prev || s.rps > prev.small.rps ? s : prev.small,
        bigCpu: !prev || b.cpuPerGiB < prev.bigCpu.cpuPerGiB ? b : prev.bigCpu,
        smallCpu: !prev || s.cpuUsPerRequest < prev.smallCpu.cpuUsPerRequest ? s : prev.smallCpu,
        curl: !prev || c.bytesPerSec > prev.curl.bytesPerSec ? c : prev.curl,
        curlCpu: !prev || c.cpuPerGiB < prev.curlCpu.cpuPerGiB ? c : prev.curlCpu,
      };
    }
  }
  const fmt = (x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : 'n/a');
  const ratio = (a, b, f) => (res[a] && res[b] ? f(res[a]) / f(res[b]) : NaN);
  console.log('best of the rounds (throughput; CPU per GiB, each with the load average when it was measured):');
  for (const [name, r] of Object.entries(res)) {
    console.log(
      `  ${name.padEnd(13)} big ${mibs(r.big.bytesPerSec)} MiB/s (load ${r.big.load}), ${r.bigCpu.cpuPerGiB.toFixed(3)} s CPU/GiB (load ${r.bigCpu.load}); ` +
        `16 curls ${mibs(r.curl.bytesPerSec)} MiB/s (load ${r.curl.load}), ${r.curlCpu.cpuPerGiB.toFixed(3)} s CPU/GiB (load ${r.curlCpu.load}); ` +
        `8 KiB ${r.small.rps.toFixed(0)} req/s (load ${r.small.load}), ${r.smallCpu.cpuUsPerRequest.toFixed(0)} µs CPU/req`,
    );
  }
  const peak = servers.airlock ? hwm(servers.airlock.pids[0]) : NaN;
  const summary = {};
  for (const name of Object.keys(res)) {
    if (name === 'nginx') continue;
    summary[name] = {
      bigVsNginx: ratio(name, 'nginx', (r) => r.big.bytesPerSec),
      cpuPerGiBVsNginx: ratio(name, 'nginx', (r) => r.bigCpu.cpuPerGiB),
      smallVsNginx: ratio(name, 'nginx', (r) => r.small.rps),
      cpuPerRequestVsNginx: ratio(name, 'nginx', (r) => r.smallCpu.cpuUsPerRequest),
      bigVsRegistry: ratio(name, 'registry', (r) => r.big.bytesPerSec),
      curlVsNginx: ratio(name, 'nginx', (r) => r.curl.bytesPerSec),
      curlCpuPerGiBVsNginx: ratio(name, 'nginx', (r) => r.curlCpu.cpuPerGiB),
    };
    const x = summary[name];
    console.log(
      `ratios ${name.padEnd(13)} to nginx: big ${fmt(x.bigVsNginx)} throughput, ${fmt(x.cpuPerGiBVsNginx)} CPU/GiB; 8 KiB ${fmt(x.smallVsNginx)} req/s, ` +
        `${fmt(x.cpuPerRequestVsNginx)} CPU/req; big ${fmt(x.bigVsRegistry)} registry's throughput; ` +
        `16 curls ${fmt(x.curlVsNginx)} throughput, ${fmt(x.curlCpuPerGiBVsNginx)} CPU/GiB`,
    );
  }
  console.log(
    `targets: airlock big ≥ 0.85× nginx, ≥ 1.0× registry, CPU/GiB ≤ 1.5× nginx; airlock-accel ≥ 0.95× nginx; 8 KiB ≥ 0.5× nginx; ` +
      `airlock peak RSS ${Number.isFinite(peak) ? (peak / 2 ** 20).toFixed(0) : 'n/a'} MiB (target ≤ 150); load average ${loadavg()} (best of ${rounds} interleaved rounds)`,
  );
  console.log(JSON.stringify({ sizeMiB: mib, seconds, results: res, summary, airlockPeakRssMiB: peak / 2 ** 20 }));
} finally {
  for (const p of procs) p.kill('SIGTERM');
  await sleep(1000);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  await rm(B, { recursive: true, force: true });
}
