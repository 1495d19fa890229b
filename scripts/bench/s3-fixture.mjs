/**
 * What the S3 benchmarks (stage-s3.mjs, relocate-s3.mjs) share: ~256 MiB of
 * random files (1, 4, 16 and 64 MiB; `scale` multiplies the counts) on a
 * plain HTTP upstream in this process, a signed release of them, a real
 * Ceph RGW on free ports (scripts/ceph/start.sh, bluestore in a sparse file)
 * with a bucket `bench`, and `timed(args)`: the airlock CLI under
 * /usr/bin/time -v, with its wall time, peak RSS and the load average
 * before it. `close()` stops and removes everything.
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const MiB = 1024 * 1024;
const CLI = join(REPO, 'dist', 'server', 'cli', 'main.js');

export async function s3Fixture({ scale = 1, name = 'bench-s3' } = {}) {
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

  const tmp = mkdtempSync(join(tmpdir(), `airlock-${name}-`));
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
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
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
  const stamp = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
  writeFileSync(
    envelope,
    signRelease(
      {
        type: 'airlock-release',
        spec: 1,
        product: 'bench',
        release: '1.0.0',
        serial: 1,
        issued: stamp(now - 60_000),
        expires: stamp(now + 86_400_000),
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
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|no|all)_proxy$/i.test(k))), ...awsEnv };

  /** the airlock CLI with `args`; rejects on a non-zero exit */
  const run = (args) =>
    new Promise((done, fail) => {
      const child = spawn('/usr/bin/time', ['-v', process.execPath, CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', (code) => (code === 0 ? done({ out, err }) : fail(new Error(`exit ${code}: ${err.slice(-2000)}`))));
    });

  /** run(args) timed: wall seconds, peak RSS in MiB (/usr/bin/time -v), the 1-minute load average before it */
  const timed = async (args) => {
    const load = loadavg()[0];
    const start = process.hrtime.bigint();
    const { err } = await run(args);
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    const rss = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1] ?? 0) / 1024;
    return { secs, rss, load };
  };

  const close = () => {
    s3.destroy();
    upstream.close();
    execFileSync('bash', [join(REPO, 'scripts', 'ceph', 'stop.sh'), cephDir, 'fast']);
    rmSync(tmp, { recursive: true, force: true });
  };
  return { files, total, tmp, endpoint, trust, envelope, run, timed, close };
}
