#!/usr/bin/env node
// Scaling out over one S3 bucket (a real single-OSD Ceph this script starts on
// free ports of 127.0.0.1, as stage-s3.mjs does), on loopback:
//
//   npm run build && flock /tmp/airlock-bench.lock node scripts/bench/scale-out.mjs \
//     [--mib 256] [--times 2] [--nodes 50] [--node-mib 64] [--rounds 2]
//
// a. The same blobs (--mib in 4 blobs) to 16 concurrent curl processes, each
//    fetching every blob --times times, from:
//      fs   `airlock serve` with the blobs under cache_dir (page cache)
//      s3   `airlock serve` with the blobs in the bucket (each GET streamed from RGW)
//      rgw  curl straight from the gateway (SigV4 GETs of the same objects)
//    → aggregate throughput and its ratios (s3 / fs, s3 / rgw); CPU per GiB of
//    airlock serve's process and of the gateway (radosgw + ceph-osd), from
//    /proc/PID/stat before and after; peak RSS (VmHWM) of each serve process.
// b. --nodes concurrent node downloads (`airlock-node upgrade --download-only`,
//    the client's download path: manifest, verify, preflight, pull 4 blobs of
//    --node-mib / 4 with parallel 4 and resume, each node into a fresh state
//    dir) of a release in the bucket, from
//      1 replica          the node's --cache is the serve process itself
//      1 behind haproxy   the same through haproxy (docs/examples/haproxy-airlock.cfg)
//      3 behind haproxy   three serve processes over the bucket, round robin
//    The nodes run under `nice -n 10`: on a real site they are other machines,
//    and here, 50 of them starting at once on 2 cores would starve the serve
//    process for seconds (its /healthz unanswered for 15 s, so haproxy's checks
//    take it out of the rotation and every request gets 503).
//    → aggregate throughput (every node's bytes / the wall time from the first
//    spawn to the last exit), the slowest node's time, CPU per GiB of the serve
//    processes, haproxy and the gateway, peak RSS of each serve process and of
//    the largest node.
// Rounds interleave (a: fs, s3, rgw; b: 1, 1+haproxy, 3+haproxy), best of
// --rounds for each figure; the 1-minute load average is printed beside each.
// Each serve process over the bucket has an empty cache_dir of its own (it
// takes the release records from the bucket). Everything is stopped and
// removed at the end.
//
// Last figures (2 shared cores, load average 3-60 from other jobs during the
// run; `flock /tmp/airlock-bench.lock node scripts/bench/scale-out.mjs`, the
// defaults: --mib 256 --times 2 --nodes 50 --node-mib 64 --rounds 2, best of 2;
// in brackets the previous build, whose serve read through the SDK's
// GetObject stream, run right before in the same conditions):
// a. fs 3765 MiB/s (airlock 0.275 s CPU/GiB, load 35.7); s3 795 MiB/s [613]
//    (airlock 0.445 s CPU/GiB [1.137] + gateway 1.532, load 32.9 [2.9]); rgw
//    938 MiB/s (gateway 1.501 s CPU/GiB, load 49.1): s3 / fs 0.21x, s3 / rgw
//    0.85x [0.63x]. Peak RSS serve-fs 99 MiB, serve-s3 121 MiB [173],
//    radosgw 986 MiB.
// b. 50 nodes x 64 MiB: 1 replica 139 MiB/s, slowest node 23.1 s (load 43.0);
//    1 behind haproxy 133 MiB/s, 24.1 s (haproxy 0.53 s CPU/GiB, load 47.5);
//    3 behind haproxy 123 MiB/s, 26.0 s (load 50.7): 0.89x one replica, since
//    the two cores, not a serve process, are the limit here. Serve 0.78-1.13 s
//    CPU/GiB [2.73-3.82], gateway 1.8-2.1. Peak RSS per serve process: 118 MiB
//    [189] for the one replica (200 downloads at once), 98-101 MiB [138-149]
//    for each of three. (Each node was reported at 330 MiB:
//    test/support/peak-rss.mjs read getrusage's
//    ru_maxrss, which survives execve and was this script's own ~320 MiB of
//    blobs at fork; it reads VmHWM now. scripts/bench/node-memory.mjs: a node
//    peaks at 115 MiB alone, 109-127 MiB as one of 50 × 64 MiB on 2 cores.)
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    times: { type: 'string', default: '2' },
    nodes: { type: 'string', default: '50' },
    'node-mib': { type: 'string', default: '64' },
    rounds: { type: 'string', default: '2' },
  },
});
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const blobMiB = Number(values.mib);
const times = Number(values.times);
const nodes = Number(values.nodes);
const nodeMiB = Number(values['node-mib']);
const rounds = Number(values.rounds);
const CLIENTS = 16;
const AIRLOCK = join(REPO, 'dist', 'server', 'cli', 'main.js');
const NODE_CLI = join(REPO, 'dist', 'client', 'cli', 'main.js');
const PEAK_RSS = pathToFileURL(join(REPO, 'test', 'support', 'peak-rss.mjs')).href;
const { makeTrust, signRelease } = await import(join(REPO, 'dist', 'scripts', 'world', 'keys.js'));
const { freePorts } = await import(join(REPO, 'dist', 'scripts', 'world', 'net.js'));
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const { S3Client, CreateBucketCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const mibs = (bytesPerSec) => (bytesPerSec / MiB).toFixed(0);
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
/** user + sys seconds of these processes (and the children they reaped) */
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    } catch {
      // gone
    }
  }
  return ticks / TICK;
}
const hwmMiB = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|no|all)_proxy$/i.test(k)));
const awsEnv = { AWS_ACCESS_KEY_ID: 'TESTACCESSKEY', AWS_SECRET_ACCESS_KEY: 'TESTSECRETKEY', AWS_REGION: 'us-east-1' };

async function waitHttp(url, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((r) => http.get(url, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`not ready: ${url}`);
    await sleep(50);
  }
}
function run(cmd, args, extraEnv = {}) {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? done({ out, err }) : fail(new Error(`${cmd} ${args.slice(0, 3).join(' ')}: exit ${code}: ${err.slice(-1500)}`))));
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'airlock-bench-scale-out-'));
const procs = [];
function start(name, cmd, args, extraEnv = {}) {
  const log = openSync(join(tmp, `${name}.log`), 'a');
  const p = spawn(cmd, args, { env: { ...env, ...extraEnv }, stdio: ['ignore', log, log] });
  procs.push(p);
  return p;
}
const cephDir = join(tmp, 'ceph');
let s3client = { destroy() {} };
try {
  // ---- Ceph, the bucket, two releases staged from a local upstream ----
  const [monPort, rgwPort] = await freePorts(2);
  const t0 = Date.now();
  execFileSync('bash', [join(REPO, 'scripts', 'ceph', 'start.sh'), cephDir, 'bluestore'], {
    env: { ...process.env, MON_PORT: String(monPort), RGW_PORT: String(rgwPort) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  console.error(`ceph ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const gatewayPids = ['client.rgw', 'osd.0'].map((n) => Number(readFileSync(join(cephDir, 'run', `${n}.pid`), 'utf8').trim()));
  s3client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY },
  });
  await s3client.send(new CreateBucketCommand({ Bucket: 'bench' }));

  const files = new Map();
  const bigBlobs = [];
  const nodeBlobs = [];
  for (let i = 0; i < 4; i++) {
    const big = randomBytes((blobMiB / 4) * MiB);
    files.set(`/big-${i}.bin`, big);
    bigBlobs.push({ path: `big-${i}.bin`, body: big });
    const small = randomBytes((nodeMiB / 4) * MiB);
    files.set(`/node-${i}.bin`, small);
    nodeBlobs.push({ path: `node-${i}.bin`, body: small });
  }
  const upstream = http.createServer((req, res) => {
    const body = files.get(req.url);
    if (!body) return res.writeHead(404).end();
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${upstream.address().port}`;
  const trust = makeTrust(join(tmp, 'keys'));
  const sha = (b) => createHash('sha256').update(b).digest('hex');
  const envelope = (release, serial, blobs) => {
    const now = Date.now();
    const file = join(tmp, `release-${release}.json`);
    writeFileSync(
      file,
      signRelease(
        {
          type: 'airlock-release',
          spec: 1,
          product: 'bench',
          release,
          serial,
          issued: new Date(now - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
          expires: new Date(now + 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
          artifacts: blobs.map((b) => ({ path: b.path, kind: 'file', sha256: sha(b.body), size: b.body.length, urls: [`${base}/${b.path}`] })),
        },
        trust,
      ),
    );
    return file;
  };
  const bigRelease = envelope('big', 1, bigBlobs);
  const nodeRelease = envelope('nodes', 2, nodeBlobs);
  const fsCfg = join(tmp, 'fs.yml');
  writeFileSync(fsCfg, `cache_dir: ${join(tmp, 'cache-fs')}\ntrust: ${trust.rootJsonPath}\n`);
  // over the bucket, each process on a cache_dir of its own (the release records come from the bucket)
  const s3Config = (name) => {
    const cfg = join(tmp, `${name}.yml`);
    writeFileSync(
      cfg,
      `cache_dir: ${join(tmp, `cache-${name}`)}\ntrust: ${trust.rootJsonPath}\n` +
        `storage: {backend: s3, s3: {endpoint: "${endpoint}", bucket: bench, prefix: "site", region: us-east-1, force_path_style: true}}\n`,
    );
    return cfg;
  };
  const s3Cfg = s3Config('stage');
  await run(process.execPath, [AIRLOCK, 'stage', bigRelease, '--config', fsCfg]);
  await run(process.execPath, [AIRLOCK, 'stage', bigRelease, '--config', s3Cfg], awsEnv);
  await run(process.execPath, [AIRLOCK, 'stage', nodeRelease, '--config', s3Cfg], awsEnv);
  upstream.close();
  files.clear();
  // the bucket's keys of the big blobs, as the gateway names them (for curl straight from RGW)
  const listed = await s3client.send(new ListObjectsV2Command({ Bucket: 'bench', Prefix: 'site/' }));
  const keyOf = (hex) => listed.Contents.map((o) => o.Key).find((k) => k.endsWith(`/${hex}`));

  // ---- servers: serve over fs, serve over s3 (one for a; 1 + 3 replicas for b), haproxy ----
  const ports = await freePorts(8);
  const serve = (name, cfg, port) => {
    const p = start(name, process.execPath, [AIRLOCK, 'serve', '--config', cfg, '--listen', `127.0.0.1:${port}`], awsEnv);
    return { name, pid: p.pid, url: `http://127.0.0.1:${port}` };
  };
  const serveFs = serve('serve-fs', fsCfg, ports[0]);
  const serveS3 = serve('serve-s3', s3Config('serve-s3'), ports[1]);
  const single = serve('replica-single', s3Config('replica-single'), ports[2]);
  const trio = [3, 4, 5].map((i, n) => serve(`replica-${n + 1}`, s3Config(`replica-${n + 1}`), ports[i]));
  // haproxy: the shipped example's sections, bind and servers replaced (as test/support/haproxy.ts does)
  const haproxyFor = (name, port, backends) => {
    const example = readFileSync(join(REPO, 'docs', 'examples', 'haproxy-airlock.cfg'), 'utf8');
    const lines = example.slice(example.search(/^defaults\b/m)).split('\n');
    const isServer = (l) => /^\s+server\s/.test(l);
    const first = lines.findIndex(isServer);
    const kept = lines.filter((l) => !isServer(l));
    kept.splice(first, 0, ...backends.map((b, i) => `    server replica${i + 1} ${new URL(b.url).host}`));
    const cfg = join(tmp, `${name}.cfg`);
    writeFileSync(cfg, `global\n    log stdout format raw local0\n\n${kept.join('\n').replace(/^(\s+)bind\s.*$/m, `$1bind 127.0.0.1:${port}`)}`);
    const p = start(name, '/usr/sbin/haproxy', ['-db', '-f', cfg]);
    return { name, pid: p.pid, url: `http://127.0.0.1:${port}` };
  };
  const haSingle = haproxyFor('haproxy-single', ports[6], [single]);
  const haTrio = haproxyFor('haproxy-trio', ports[7], trio);
  for (const s of [serveFs, serveS3, single, ...trio, haSingle, haTrio]) await waitHttp(`${s.url}/healthz`);

  // ---- a. 16 curls: fs vs s3 vs rgw ----
  const hexes = bigBlobs.map((b) => sha(b.body));
  const targets = {
    fs: { name: 'fs', urls: hexes.map((h) => `${serveFs.url}/blobs/sha256/${h}`), pids: [serveFs.pid], extra: [] },
    s3: { name: 's3', urls: hexes.map((h) => `${serveS3.url}/blobs/sha256/${h}`), pids: [serveS3.pid], extra: [] },
    rgw: {
      name: 'rgw',
      urls: hexes.map((h) => `${endpoint}/bench/${keyOf(h)}`),
      pids: [],
      // curl 7.88 signs no payload hash itself; RGW wants the header
      extra: ['-H', 'x-amz-content-sha256: UNSIGNED-PAYLOAD', '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${awsEnv.AWS_ACCESS_KEY_ID}:${awsEnv.AWS_SECRET_ACCESS_KEY}`],
    },
  };
  async function curls(t) {
    // curl's exit status is its last transfer's: each transfer's status is read from -w; a failed one is counted
    const args = ['-sf', '--max-time', '600', ...t.extra];
    for (let i = 0; i < times; i++) for (const u of t.urls) args.push('-o', '/dev/null', u);
    const load = loadavg();
    const failed = [];
    const cpu0 = cpuSeconds(t.pids);
    const gw0 = cpuSeconds(gatewayPids);
    const t0 = performance.now();
    const sizes = await Promise.all(
      Array.from({ length: CLIENTS }, () =>
        run('curl', [...args, '-w', '%{http_code} %{size_download}\n']).then(({ out }) => {
          const lines = out.trim().split('\n');
          if (lines.length !== times * t.urls.length) throw new Error(`curl (${t.name}): ${lines.length} transfers reported: ${JSON.stringify(out.slice(0, 500))}`);
          return lines.reduce((a, l) => {
            const m = /^(\d{3}) (\d+)$/.exec(l);
            if (!m || m[1] !== '200' || Number(m[2]) !== (blobMiB / 4) * MiB) {
              failed.push(l);
              return a;
            }
            return a + Number(m[2]);
          }, 0);
        }),
      ),
    );
    const secs = (performance.now() - t0) / 1000;
    const bytes = sizes.reduce((a, n) => a + n, 0);
    return { bytesPerSec: bytes / secs, cpuPerGiB: (cpuSeconds(t.pids) - cpu0) / (bytes / GiB), gatewayPerGiB: (cpuSeconds(gatewayPids) - gw0) / (bytes / GiB), load, failed };
  }

  // ---- b. N nodes: 1 replica, 1 behind haproxy, 3 behind haproxy ----
  const setups = {
    '1 replica': { url: single.url, serves: [single], proxy: [] },
    '1 behind haproxy': { url: haSingle.url, serves: [single], proxy: [haSingle.pid] },
    '3 behind haproxy': { url: haTrio.url, serves: trio, proxy: [haTrio.pid] },
  };
  async function nodeRun(s, round) {
    const dirs = Array.from({ length: nodes }, (_, i) => join(tmp, `nodes-${round}`, `n${i}`));
    mkdirSync(join(tmp, `nodes-${round}`), { recursive: true });
    const load = loadavg();
    const servePids = s.serves.map((x) => x.pid);
    const cpu0 = cpuSeconds(servePids);
    const px0 = cpuSeconds(s.proxy);
    const gw0 = cpuSeconds(gatewayPids);
    const t0 = performance.now();
    // every node runs to its end before a failure is reported (their folders are removed after)
    const settled = await Promise.allSettled(
      dirs.map(async (d) => {
        const { err } = await run('nice', [
          '-n',
          '10',
          process.execPath,
          '--import',
          PEAK_RSS,
          NODE_CLI,
          'upgrade',
          '--cache',
          s.url,
          '--release',
          'nodes',
          '--download-only',
          '--trust',
          trust.rootJsonPath,
          '--state-dir',
          d,
          '--root',
          join(d, 'root'),
        ]);
        return { secs: (performance.now() - t0) / 1000, rss: Number(/peak-rss-kib (\d+)/.exec(err)?.[1] ?? 0) / 1024 };
      }),
    );
    const failed = settled.find((x) => x.status === 'rejected');
    if (failed) throw failed.reason;
    const each = settled.map((x) => x.value);
    const secs = (performance.now() - t0) / 1000;
    const bytes = nodes * nodeMiB * MiB;
    rmSync(join(tmp, `nodes-${round}`), { recursive: true, force: true });
    return {
      bytesPerSec: bytes / secs,
      slowest: Math.max(...each.map((e) => e.secs)),
      nodeRss: Math.max(...each.map((e) => e.rss)),
      serveCpuPerGiB: (cpuSeconds(servePids) - cpu0) / (bytes / GiB),
      proxyCpuPerGiB: (cpuSeconds(s.proxy) - px0) / (bytes / GiB),
      gatewayPerGiB: (cpuSeconds(gatewayPids) - gw0) / (bytes / GiB),
      load,
    };
  }

  const best = {};
  const keep = (key, r, better) => (best[key] = !best[key] || better(r, best[key]) ? r : best[key]);
  for (let round = 1; round <= rounds; round++) {
    for (const [name, t] of Object.entries(targets)) {
      const r = await curls(t);
      keep(`a ${name}`, r, (x, y) => x.bytesPerSec > y.bytesPerSec);
      console.log(
        `round ${round} a ${name.padEnd(3)} ${CLIENTS} curls × ${times} × ${blobMiB} MiB: ${mibs(r.bytesPerSec)} MiB/s, ` +
          `airlock ${t.pids.length ? `${r.cpuPerGiB.toFixed(3)} s` : '-'} CPU/GiB, gateway ${r.gatewayPerGiB.toFixed(3)} s CPU/GiB (load ${r.load})` +
          (r.failed.length ? `, ${r.failed.length} transfers failed (${[...new Set(r.failed)].slice(0, 3).join('; ')}), their bytes not counted` : ''),
      );
      await sleep(500);
    }
    for (const [name, s] of Object.entries(setups)) {
      const r = await nodeRun(s, round);
      keep(`b ${name}`, r, (x, y) => x.bytesPerSec > y.bytesPerSec);
      console.log(
        `round ${round} b ${name.padEnd(16)} ${nodes} nodes × ${nodeMiB} MiB: ${mibs(r.bytesPerSec)} MiB/s, slowest node ${r.slowest.toFixed(1)} s, ` +
          `serve ${r.serveCpuPerGiB.toFixed(3)} s CPU/GiB, haproxy ${r.proxyCpuPerGiB.toFixed(3)}, gateway ${r.gatewayPerGiB.toFixed(3)}, ` +
          `node peak RSS ${r.nodeRss.toFixed(0)} MiB (load ${r.load})`,
      );
      await sleep(500);
    }
  }

  const a = (n) => best[`a ${n}`];
  console.log(`\nbest of ${rounds} rounds (load average at each figure's start):`);
  console.log(`a. ${CLIENTS} curls, ${blobMiB} MiB in 4 blobs, each fetched ${times}× per client:`);
  for (const n of ['fs', 's3', 'rgw']) {
    const r = a(n);
    console.log(
      `   ${n.padEnd(4)} ${mibs(r.bytesPerSec).padStart(5)} MiB/s  airlock ${n === 'rgw' ? '  -  ' : r.cpuPerGiB.toFixed(3)} s CPU/GiB  gateway ${r.gatewayPerGiB.toFixed(3)} s CPU/GiB  (load ${r.load})` +
        (r.failed.length ? `  ${r.failed.length} transfers failed` : ''),
    );
  }
  console.log(
    `   s3 / fs ${(a('s3').bytesPerSec / a('fs').bytesPerSec).toFixed(2)}×, s3 / rgw ${(a('s3').bytesPerSec / a('rgw').bytesPerSec).toFixed(2)}× throughput; ` +
      `peak RSS serve-fs ${hwmMiB(serveFs.pid).toFixed(0)} MiB, serve-s3 ${hwmMiB(serveS3.pid).toFixed(0)} MiB, radosgw ${hwmMiB(gatewayPids[0]).toFixed(0)} MiB`,
  );
  console.log(`b. ${nodes} nodes, airlock-node upgrade --download-only of ${nodeMiB} MiB (4 blobs) each:`);
  for (const n of Object.keys(setups)) {
    const r = best[`b ${n}`];
    console.log(
      `   ${n.padEnd(16)} ${mibs(r.bytesPerSec).padStart(5)} MiB/s  slowest node ${r.slowest.toFixed(1)} s  serve ${r.serveCpuPerGiB.toFixed(3)} s CPU/GiB` +
        `  haproxy ${r.proxyCpuPerGiB.toFixed(3)}  gateway ${r.gatewayPerGiB.toFixed(3)}  node peak RSS ${r.nodeRss.toFixed(0)} MiB  (load ${r.load})`,
    );
  }
  const b1 = best['b 1 replica'];
  const b3 = best['b 3 behind haproxy'];
  console.log(
    `   3 behind haproxy / 1 replica: ${(b3.bytesPerSec / b1.bytesPerSec).toFixed(2)}× throughput; peak RSS per serve process: ` +
      `1 replica ${hwmMiB(single.pid).toFixed(0)} MiB, 3 replicas ${trio.map((t) => hwmMiB(t.pid).toFixed(0)).join(' / ')} MiB`,
  );
  console.log(`load average now ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
} finally {
  for (const p of procs) p.kill('SIGTERM');
  await sleep(1000);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  s3client.destroy();
  execFileSync('bash', [join(REPO, 'scripts', 'ceph', 'stop.sh'), cephDir, 'fast']);
  rmSync(tmp, { recursive: true, force: true });
}
