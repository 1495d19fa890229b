#!/usr/bin/env node
// The trust core and `status` at scale (issue 2: ≤ 2 s each for 100,000 artifacts).
//
//   npm run build && node scripts/bench/scale.mjs [ARTIFACTS=100000]
//
// 1. generates a manifest of ARTIFACTS artifacts (file, deb and gem kinds in
//    turn, each blob 2–64 bytes of distinct content) and signs it with a
//    fresh ed25519 release key under a fresh root;
// 2. verifyRelease: one warm-up, then the median of 3 (wall and CPU time);
// 3. fills a store through the store API (openStore + ingestStream, so the
//    layout is the real one) with every other artifact, and putRelease;
// 4. store.status(release) in a fresh reader store: the first call (reads and
//    decodes the stored envelope) and the median of 3 after it;
// 5. `node dist/server/cli/main.js status RELEASE --cache-dir DIR`, wall time
//    including node's start, median of 3; it must exit 1 (not ready) and name
//    every missing file.
// Prints the figures, the targets and peak RSS. Exits 1 when a target is missed.
// KEEP=1 keeps the temporary cache folder (printed) for profiling `status`.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../../dist');
const m = await import(pathToFileURL(join(dist, 'manifests/index.js')).href);
const { openStore } = await import(pathToFileURL(join(dist, 'storage/index.js')).href);

const n = Number(process.argv[2] ?? 100_000);
const TARGET_S = 2;
const RELEASE = 'scale-1';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
async function timed(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await fn();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1000, result };
}

/** The blob of artifact i: 2–64 bytes, distinct per i. */
const blobOf = (i) => Buffer.from(`${i}:`.padEnd(1 + (i % 64), 'x'));

function artifactOf(i, body) {
  const sha256 = createHash('sha256').update(body).digest('hex');
  const common = { sha256, size: body.length };
  switch (i % 3) {
    case 0:
      return { path: `files/${i % 256}/component-${i}.tgz`, kind: 'file', ...common, urls: [`https://files.example.com/3.6/component-${i}.tgz`], roles: ['router'] };
    case 1:
      return { path: `debs/pkg${i}_1.${i % 10}_amd64.deb`, kind: 'deb', ...common, urls: [`http://deb.example.com/pool/pkg${i}_1.${i % 10}_amd64.deb`], package: `pkg${i}`, version: `1.${i % 10}`, arch: 'amd64' };
    default:
      return { path: `gems/gem${i}-2.${i % 7}.gem`, kind: 'gem', ...common, urls: [`https://gems.example.com/gems/gem${i}-2.${i % 7}.gem`], gem: `gem${i}`, version: `2.${i % 7}` };
  }
}

const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-scale-'));
const results = [];
const report = (name, ms, extra = '') => {
  const ok = ms <= TARGET_S * 1000;
  results.push({ name, ms, ok });
  console.log(`${name.padEnd(44)} ${secs(ms).padStart(8)}  (target ≤ ${TARGET_S} s: ${ok ? 'met' : 'MISSED'})${extra}`);
};
try {
  console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; node ${process.version}`);

  // ---- 1. manifest, root, envelope
  const key = m.generateKey();
  const rootPayload = {
    type: 'airlock-root', spec: 1, version: 1, expires: '2099-01-01T00:00:00Z',
    keys: { [key.keyid]: { keytype: 'ed25519', public: m.rawPublicKey(key.publicKey).toString('base64') } },
    roles: { root: { keyids: [key.keyid], threshold: 1 }, release: { keyids: [key.keyid], threshold: 1 } },
  };
  const now = new Date();
  const root = m.loadTrustedRoot(m.signEnvelope(m.ROOT_PAYLOAD_TYPE, m.canonicalBytes(rootPayload), [key.privateKey]), now);
  const blobs = [];
  const artifacts = [];
  for (let i = 0; i < n; i++) {
    const body = blobOf(i);
    blobs.push(body);
    artifacts.push(artifactOf(i, body));
  }
  const manifest = {
    type: 'airlock-release', spec: 1, product: 'bench', release: RELEASE, serial: 1,
    issued: '2026-01-01T00:00:00Z', expires: '2099-01-01T00:00:00Z', artifacts,
  };
  const envelope = m.signEnvelope(m.RELEASE_PAYLOAD_TYPE, m.canonicalBytes(manifest), [key.privateKey]);
  console.log(`manifest: ${n} artifacts, envelope ${(envelope.length / 2 ** 20).toFixed(1)} MiB`);

  // ---- 2. verifyRelease
  m.verifyRelease(envelope, { root, now }); // warm-up
  const runs = [];
  for (let r = 0; r < 3; r++) runs.push(await timed(() => m.verifyRelease(envelope, { root, now })));
  const verified = runs[0].result;
  if (verified.manifest.artifacts.length !== n) throw new Error('verifyRelease returned the wrong manifest');
  report('verifyRelease (median of 3)', median(runs.map((r) => r.wall)), `  cpu ${secs(median(runs.map((r) => r.cpu)))}; runs ${runs.map((r) => secs(r.wall)).join(', ')}`);

  // ---- 3. a store holding every other blob
  const cache = join(dir, 'cache');
  const writer = await openStore({ cacheDir: cache, write: true });
  const fill = await timed(async () => {
    let next = 0; // the even artifacts, 16 at a time
    const worker = async () => {
      while (next < n) {
        const i = next;
        next += 2;
        await writer.ingestStream({ sha256: artifacts[i].sha256, size: artifacts[i].size }, Readable.from([blobs[i]]));
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  });
  await writer.putRelease(verified);
  await writer.close();
  const present = Math.ceil(n / 2);
  console.log(`store: ${present} of ${n} blobs ingested through ingestStream in ${secs(fill.wall)}, release stored`);

  // ---- 4. store.status
  const reader = await openStore({ cacheDir: cache });
  const first = await timed(() => reader.status(RELEASE));
  const st = first.result;
  if (st.ready || st.files.present !== present || st.missing.length !== n - present) {
    throw new Error(`status is wrong: ready=${st.ready} present=${st.files.present} missing=${st.missing.length}`);
  }
  report('store.status, first call (reads the envelope)', first.wall, `  cpu ${secs(first.cpu)}`);
  const again = [];
  for (let r = 0; r < 3; r++) again.push(await timed(() => reader.status(RELEASE)));
  report('store.status, again (median of 3)', median(again.map((r) => r.wall)));
  await reader.close();

  // ---- 5. the CLI, end to end (and node + the CLI starting, for scale)
  const main = join(dist, 'server/cli/main.js');
  const start = [];
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    spawnSync(process.execPath, [main, 'status', '--help'], { encoding: 'utf8' });
    start.push(performance.now() - t0);
  }
  console.log(`${'airlock status --help (start-up alone)'.padEnd(44)} ${secs(median(start)).padStart(8)}`);
  const cli = [];
  let childRss = 0;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    const p = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, main, 'status', RELEASE, '--cache-dir', cache], { maxBuffer: 1 << 30, encoding: 'utf8' });
    cli.push(performance.now() - t0);
    if (p.error) throw p.error;
    if (p.status !== 1) throw new Error(`airlock status exited ${p.status}, expected 1 (not ready): ${p.stderr.slice(0, 500)}`);
    const missingLines = p.stdout.split('\n').filter((l) => l.startsWith('  missing ')).length;
    if (!p.stdout.includes('NOT READY') || missingLines !== n - present) {
      throw new Error(`airlock status listed ${missingLines} missing files, expected ${n - present}`);
    }
    childRss = Math.max(childRss, Number(p.stderr.trim().split('\n').pop()) * 1024 || 0);
  }
  report(`airlock status ${RELEASE} (CLI, median of 3)`, median(cli), `  exit 1, ${n - present} missing listed; runs ${cli.map(secs).join(', ')}`);

  const mib = (b) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  console.log(`peak RSS: this process ${mib(process.resourceUsage().maxRSS * 1024)}, airlock status ${childRss ? mib(childRss) : 'unknown'}`);
  const missed = results.filter((r) => !r.ok);
  console.log(missed.length ? `MISSED: ${missed.map((r) => r.name).join('; ')}` : 'all targets met');
  process.exitCode = missed.length ? 1 : 0;
} finally {
  if (process.env.KEEP) console.log(`kept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
}
