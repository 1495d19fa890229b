#!/usr/bin/env node
// Peak RSS of airlock-node under contention: one `airlock serve` (blobs under
// cache_dir) and --nodes concurrent `airlock-node upgrade --download-only`
// processes under `nice -n 10` (4 blobs of --node-mib / 4, parallel 4, each
// into a fresh state dir), each with test/support/peak-rss.mjs preloaded.
// With 50 nodes on 2 cores each node gets a sliver of CPU while the serve
// process keeps sending: the case scale-out.mjs part b measured.
//
//   npm run build && flock /tmp/airlock-bench.lock node scripts/bench/node-memory.mjs \
//     [--nodes 50] [--node-mib 64] [--hold-mib 0] [--preload FILE]
//
// → the largest and the median node peak RSS, the slowest node, the 1-minute
// load average at the start and at the end. --hold-mib keeps that much in this
// process while it spawns the nodes (scale-out.mjs held ~320 MiB of blobs);
// --preload replaces test/support/peak-rss.mjs (to compare ways of measuring:
// getrusage's ru_maxrss survives execve, so each node reported this process's
// RSS at fork as its own peak; VmHWM does not).
//
// Figures (2 shared cores, other jobs running; 4 blobs per node, parallel 4):
//   50 × 64 MiB, --hold-mib 320, ru_maxrss (the old preload): 389 MiB for
//     every node: this script's own memory (load 42.8-53.6)
//   50 × 64 MiB, --hold-mib 320, VmHWM: max 127 MiB, median 118 (load 53.6-63.4)
//   1 node alone: 115 MiB (load 63.8)
//   50 × 256 MiB: max 141 MiB, median 119 (load 70.2-129.9); other runs
//     max 132 and 154: the spread is socket buffers already written to the
//     partial file that a starved process has not collected yet. Since ingest
//     reads chunks one by one (no Buffer.concat behind a write): max 125 MiB,
//     median 121 (load 63.5-91.2); 50 × 64 MiB max 126, median 117 (load 78.6-102.6)
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '50' },
    'node-mib': { type: 'string', default: '64' },
    'hold-mib': { type: 'string', default: '0' },
    preload: { type: 'string' },
  },
});
const nodes = Number(values.nodes);
const nodeMiB = Number(values['node-mib']);
const MiB = 2 ** 20;
const AIRLOCK = join(REPO, 'dist', 'server', 'cli', 'main.js');
const NODE_CLI = join(REPO, 'dist', 'client', 'cli', 'main.js');
const PEAK_RSS = values.preload ? pathToFileURL(resolve(values.preload)).href : pathToFileURL(join(REPO, 'test', 'support', 'peak-rss.mjs')).href;
const { makeTrust, signRelease } = await import(join(REPO, 'dist', 'scripts', 'world', 'keys.js'));
const { freePorts } = await import(join(REPO, 'dist', 'scripts', 'world', 'net.js'));
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|no|all)_proxy$/i.test(k)));

function run(cmd, args) {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stdout.resume();
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? done({ err }) : fail(new Error(`${cmd} ${args.slice(0, 3).join(' ')}: exit ${code}: ${err.slice(-1500)}`))));
  });
}
async function waitHttp(url) {
  for (let i = 0; i < 600; i++) {
    const ok = await new Promise((r) => http.get(url, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not ready: ${url}`);
}

// what the spawning process holds (as scale-out.mjs held its blobs) must not show up in the nodes' figures
const held = randomBytes(Number(values['hold-mib']) * MiB);
const tmp = mkdtempSync(join(tmpdir(), 'airlock-bench-node-memory-'));
let serve = null;
try {
  const files = new Map();
  const blobs = [];
  for (let i = 0; i < 4; i++) {
    const body = randomBytes((nodeMiB / 4) * MiB);
    files.set(`/node-${i}.bin`, body);
    blobs.push({ path: `node-${i}.bin`, body });
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
  const now = Date.now();
  const envelope = join(tmp, 'release.json');
  writeFileSync(
    envelope,
    signRelease(
      {
        type: 'airlock-release',
        spec: 1,
        product: 'bench',
        release: 'nodes',
        serial: 1,
        issued: new Date(now - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
        expires: new Date(now + 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
        artifacts: blobs.map((b) => ({ path: b.path, kind: 'file', sha256: sha(b.body), size: b.body.length, urls: [`${base}/${b.path}`] })),
      },
      trust,
    ),
  );
  const cfg = join(tmp, 'airlock.yml');
  writeFileSync(cfg, `cache_dir: ${join(tmp, 'cache')}\ntrust: ${trust.rootJsonPath}\n`);
  await run(process.execPath, [AIRLOCK, 'stage', envelope, '--config', cfg]);
  upstream.close();
  files.clear();
  const [port] = await freePorts(1);
  const log = openSync(join(tmp, 'serve.log'), 'a');
  serve = spawn(process.execPath, [AIRLOCK, 'serve', '--config', cfg, '--listen', `127.0.0.1:${port}`], { env, stdio: ['ignore', log, log] });
  const url = `http://127.0.0.1:${port}`;
  await waitHttp(`${url}/healthz`);

  const load0 = loadavg();
  const t0 = performance.now();
  const settled = await Promise.allSettled(
    Array.from({ length: nodes }, async (_, i) => {
      const d = join(tmp, 'nodes', `n${i}`);
      const { err } = await run('nice', ['-n', '10', process.execPath, '--import', PEAK_RSS, NODE_CLI, 'upgrade', '--cache', url, '--release', 'nodes', '--download-only', '--trust', trust.rootJsonPath, '--state-dir', d, '--root', join(d, 'root')]);
      return { secs: (performance.now() - t0) / 1000, rss: Number(/peak-rss-kib (\d+)/.exec(err)?.[1] ?? 0) / 1024 };
    }),
  );
  const failed = settled.find((x) => x.status === 'rejected');
  if (failed) throw failed.reason;
  const each = settled.map((x) => x.value);
  const rss = each.map((x) => x.rss).sort((a, b) => a - b);
  console.log(
    `${nodes} nodes × ${nodeMiB} MiB: node peak RSS max ${rss[rss.length - 1].toFixed(0)} MiB, median ${rss[Math.floor(rss.length / 2)].toFixed(0)} MiB, ` +
      `min ${rss[0].toFixed(0)} MiB; slowest node ${Math.max(...each.map((x) => x.secs)).toFixed(1)} s (load ${load0} at the start, ${loadavg()} at the end)`,
  );
  held.fill(0);
} finally {
  serve?.kill();
  rmSync(tmp, { recursive: true, force: true });
}
