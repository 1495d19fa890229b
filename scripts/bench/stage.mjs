#!/usr/bin/env node
/**
 * Benchmark: `airlock stage` vs curl, same files, same squid, same parallelism.
 *
 * About 1 GiB in ~200 mixed-size files served by the real world's nginx,
 * reachable only through its squid. curl runs first as a warm-up (nginx's
 * page cache, squid's connections), then timed, writing files to disk
 * (`xargs -P N curl -x PROXY -O --output-dir`); then `airlock stage` into an
 * empty cache (hashing, partial files, fsync, atomic commit) under
 * /usr/bin/time -v for its peak RSS. Prints wall-clock ratio (target ≤ 1.1×)
 * and peak RSS (target ≤ 150 MiB).
 *
 * Usage (after `npm run build`):
 *   node scripts/bench/stage.mjs [--parallel 8] [--scale 1] [--keep]
 * --scale 0.1 runs a ~100 MiB version for a quick check.
 *
 * Last figures (2 cores, builds back to back under flock, load average
 * 4–5): before stage loaded only its own command and ingest stopped
 * concatenating socket chunks, curl 2.49 s, stage 3.01 s (1.21×), peak RSS
 * 153.5 MiB; after, curl 2.48 s, stage 2.79 s (1.13×), peak RSS 135.3 MiB.
 * (At load 35–46 the build before: 1.14×, 147.6 MiB.)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const REPO = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: { parallel: { type: 'string', default: '8' }, scale: { type: 'string', default: '1' }, keep: { type: 'boolean', default: false } },
});
const parallel = Number(values.parallel);
const scale = Number(values.scale);
const MiB = 1024 * 1024;

const { startWorld, makeTrust, releasePayload, signRelease } = await import(join(REPO, 'dist', 'scripts', 'world', 'index.js'));

// ~1 GiB in ~200 files: many small, some medium, a few large
const spec = [
  { count: Math.round(100 * scale) || 1, size: 1 * MiB },
  { count: Math.round(60 * scale) || 1, size: 4 * MiB },
  { count: Math.round(30 * scale) || 1, size: 16 * MiB },
  { count: Math.round(3 * scale) || 1, size: 64 * MiB },
];
const tmp = mkdtempSync(join(tmpdir(), 'airlock-bench-'));
const t0 = Date.now();
const world = await startWorld({ extraFiles: spec, registry: false, keep: values.keep });
console.error(`world ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (proxy ${world.proxyUrl})`);

const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(https?|no|all)_proxy$/i.test(k)));
try {
  const files = world.artifacts.filter((a) => a.extra);
  const bytes = files.reduce((n, a) => n + a.size, 0);
  const trust = makeTrust(join(tmp, 'keys'));
  const envelope = join(tmp, 'envelope.json');
  const payload = releasePayload(world, { product: 'bench', release: '1.0.0', serial: 1, select: (a) => files.some((f) => f.path === a.path) });
  // only the manifest's own fields (the world's extras carry bookkeeping such as `name`)
  payload.artifacts = payload.artifacts.map(({ path, kind, sha256, size, urls }) => ({ path, kind, sha256, size, urls }));
  writeFileSync(envelope, signRelease(payload, trust));
  const urlList = join(tmp, 'urls.txt');
  writeFileSync(urlList, files.map((a) => a.urls[0]).join('\n') + '\n');

  const curl = (outDir) => {
    rmSync(outDir, { recursive: true, force: true });
    execFileSync('mkdir', ['-p', outDir]);
    const start = process.hrtime.bigint();
    execFileSync('sh', ['-c', `xargs -P ${parallel} -n 1 curl -sS -f -x "$PROXY" -O --output-dir "$OUT" < "$LIST"`], {
      env: { ...cleanEnv, PROXY: world.proxyUrl, OUT: outDir, LIST: urlList },
      stdio: 'inherit',
    });
    return Number(process.hrtime.bigint() - start) / 1e9;
  };
  const loadBefore = loadavg()[0];
  curl(join(tmp, 'curl-warm'));
  rmSync(join(tmp, 'curl-warm'), { recursive: true, force: true });
  const curlSecs = curl(join(tmp, 'curl-out'));
  rmSync(join(tmp, 'curl-out'), { recursive: true, force: true });

  const cache = join(tmp, 'cache');
  const args = [
    '-v', process.execPath, join(REPO, 'dist', 'server', 'cli', 'main.js'), 'stage', envelope,
    '--cache-dir', cache, '--trust', trust.rootJsonPath, '--proxy', world.proxyUrl, '--parallel', String(parallel), '--json',
  ];
  const start = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', args, { env: cleanEnv, encoding: 'utf8', maxBuffer: 64 * MiB });
  const airlockSecs = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) {
    console.error(r.stdout.split('\n').slice(-3).join('\n'), r.stderr.split('\n').slice(0, 5).join('\n'));
    throw new Error(`airlock stage exited ${r.status}`);
  }
  const rssKiB = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1] ?? NaN);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1));
  const result = {
    files: files.length,
    bytes,
    parallel,
    curlSeconds: +curlSecs.toFixed(2),
    airlockSeconds: +airlockSecs.toFixed(2),
    ratio: +(airlockSecs / curlSecs).toFixed(3),
    airlockPeakRssMiB: +(rssKiB / 1024).toFixed(1),
    airlockFetched: summary.fetched,
    airlockMiBps: +(bytes / MiB / airlockSecs).toFixed(1),
    curlMiBps: +(bytes / MiB / curlSecs).toFixed(1),
    loadAverage: { beforeCurl: +loadBefore.toFixed(1), after: +loadavg()[0].toFixed(1) },
    targets: { ratio: '<= 1.1', peakRssMiB: '<= 150' },
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  await world.stop();
  if (!values.keep) rmSync(tmp, { recursive: true, force: true });
}
