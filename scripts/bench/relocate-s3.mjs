#!/usr/bin/env node
/**
 * Benchmark: `airlock relocate` of a filesystem cache into S3 (a real Ceph
 * RGW on this machine, bluestore in a sparse file) and back (`--to-fs`),
 * beside `airlock stage` of the same files straight into the bucket, which
 * uploads the same bytes without reading any back.
 *
 * Each round stages ~256 MiB (1, 4, 16 and 64 MiB files, as stage-s3.mjs)
 * into an empty filesystem cache, then times: relocate into a fresh prefix
 * (each blob sent through the verified writer, then read back from the
 * bucket and hashed), relocate --to-fs (each blob read from the bucket,
 * hashed, written, fsynced), and stage into another fresh prefix. Prints the
 * best round's wall time, MiB/s and peak RSS (/usr/bin/time -v) of each, and
 * the 1-minute load average before each run.
 *
 * Usage (after `npm run build`, with the Ceph packages installed):
 *   flock /tmp/airlock-bench.lock node scripts/bench/relocate-s3.mjs [--scale 1] [--runs 3] [--parallel 8]
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const REPO = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: { scale: { type: 'string', default: '1' }, runs: { type: 'string', default: '3' }, parallel: { type: 'string', default: '8' } },
});
const scale = Number(values.scale);
const runs = Number(values.runs);
const MiB = 1024 * 1024;
const { makeTrust, signRelease } = await import(join(REPO, 'dist', 'scripts', 'world', 'keys.js'));
const { freePorts } = await import(join(REPO, 'dist', 'scripts', 'world', 'net.js'));

const spec = [
  { count: Math.round(32 * scale) || 1, size: 1 * MiB },
  { count: Math.round(16 * scale) || 1, size: 4 * MiB },
  { count: Math.round(6 * scale) || 1, size: 16 * MiB },
  { count: Math.round(1 * scale) || 1, size: 64 * MiB },
];
const files = new Map();
for (const { count, size } of spec) for (let i = 0; i < count; i++) files.set(`/f/${size / MiB}m-${i}.bin`, randomBytes(size));
const total = [...files.values()].reduce((n, b) => n + b.length, 0);

const upstream = http.createServer((req, res) => {
  const body = files.get(req.url);
  if (!body) return res.writeHead(404).end();
  res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
  res.end(body);
});
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${upstream.address().port}`;

const tmp = mkdtempSync(join(tmpdir(), 'airlock-bench-s3-'));
const cephDir = join(tmp, 'ceph');
const [monPort, rgwPort] = await freePorts(2);
const t0 = Date.now();
execFileSync('bash', [join(REPO, 'scripts', 'ceph', 'start.sh'), cephDir, 'bluestore'], {
  env: { ...process.env, MON_PORT: String(monPort), RGW_PORT: String(rgwPort) },
  stdio: ['ignore', 'ignore', 'inherit'],
});
console.error(`ceph ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
const endpoint = `http://127.0.0.1:${rgwPort}`;
const awsEnv = { AWS_ACCESS_KEY_ID: 'TESTACCESSKEY', AWS_SECRET_ACCESS_KEY: 'TESTSECRETKEY', AWS_REGION: 'us-east-1' };
const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const s3 = new S3Client({
  endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
await s3.send(new CreateBucketCommand({ Bucket: 'bench' }));

const trust = makeTrust(join(tmp, 'keys'));
const now = Date.now();
const envelope = join(tmp, 'envelope.json');
writeFileSync(
  envelope,
  signRelease(
    {
      type: 'airlock-release',
      spec: 1,
      product: 'bench',
      release: '1.0.0',
      serial: 1,
      issued: new Date(now - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      expires: new Date(now + 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      artifacts: [...files].map(([path, body]) => ({
        path: path.slice(1),
        kind: 'file',
        sha256: createHash('sha256').update(body).digest('hex'),
        size: body.length,
        urls: [`${base}${path}`],
      })),
    },
    trust,
  ),
);
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|no|all)_proxy$/i.test(k)));

function run(args) {
  return new Promise((done, fail) => {
    const child = spawn('/usr/bin/time', ['-v', process.execPath, ...args], { env: { ...env, ...awsEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? done({ out, err }) : fail(new Error(`exit ${code}: ${err.slice(-2000)}`))));
  });
}

const results = { 'relocate s3': [], 'relocate --to-fs': [], 'stage s3': [] };
const CLI = join(REPO, 'dist', 'server', 'cli', 'main.js');
async function timed(kind, args) {
  const load = loadavg()[0];
  const start = process.hrtime.bigint();
  const { err } = await run([CLI, ...args, '--json']);
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1] ?? 0) / 1024;
  results[kind].push({ secs, rss, load });
  console.error(`${kind}: ${secs.toFixed(2)} s, ${(total / MiB / secs).toFixed(0)} MiB/s, peak RSS ${rss.toFixed(0)} MiB, load ${load.toFixed(2)}`);
}
try {
  for (let i = 0; i < runs; i++) {
    const cache = join(tmp, `cache-${i}`);
    const cfg = join(tmp, `airlock-${i}.yml`);
    writeFileSync(cfg, `cache_dir: ${cache}\ntrust: ${trust.rootJsonPath}\nparallel: ${values.parallel}\n`);
    await run([CLI, 'stage', envelope, '--config', cfg, '--json']);
    await timed('relocate s3', ['relocate', `s3://bench/reloc-${i}`, '--endpoint', endpoint, '--config', cfg]);
    await timed('relocate --to-fs', ['relocate', '--to-fs', '--config', cfg]);
    rmSync(cache, { recursive: true, force: true });
    const s3cfg = join(tmp, `airlock-s3-${i}.yml`);
    writeFileSync(
      s3cfg,
      `cache_dir: ${join(tmp, `cache-s3-${i}`)}\ntrust: ${trust.rootJsonPath}\nparallel: ${values.parallel}\n` +
        `storage: {backend: s3, s3: {endpoint: "${endpoint}", bucket: bench, prefix: "stage-${i}"}}\n`,
    );
    await timed('stage s3', ['stage', envelope, '--config', s3cfg]);
    rmSync(join(tmp, `cache-s3-${i}`), { recursive: true, force: true });
  }
  // best round: a shared machine's noise only adds time
  const best = (xs) => Math.min(...xs);
  console.log(`${(total / MiB).toFixed(0)} MiB in ${files.size} blobs, best of ${runs} (load avg before runs: ${Object.values(results).flat().map((r) => r.load.toFixed(1)).join(' ')})`);
  for (const [kind, rs] of Object.entries(results)) {
    const secs = best(rs.map((r) => r.secs));
    console.log(`${kind.padEnd(17)} ${secs.toFixed(2).padStart(6)} s  ${(total / MiB / secs).toFixed(0).padStart(4)} MiB/s  peak RSS ${best(rs.map((r) => r.rss)).toFixed(0)} MiB (max ${Math.max(...rs.map((r) => r.rss)).toFixed(0)})`);
  }
} finally {
  s3.destroy();
  upstream.close();
  execFileSync('bash', [join(REPO, 'scripts', 'ceph', 'stop.sh'), cephDir, 'fast']);
  rmSync(tmp, { recursive: true, force: true });
}
