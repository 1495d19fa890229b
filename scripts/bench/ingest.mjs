#!/usr/bin/env node
// Ingest throughput vs sha256sum, and peak RSS.
//
//   npm run build && node scripts/bench/ingest.mjs [SIZE_MIB=1024] [ROUNDS=3]
//
// Makes a SIZE_MIB file in a temp folder and syncs it (so its own writeback
// does not land in a timed run), warms the page cache with `sha256sum`, then
// in each round times `sha256sum` of it and an ingest of it into a fresh
// store from a local file stream (ingestStream: hash + write + fsync +
// rename) in a child process that reports its own peak RSS; the best round
// of each is compared (a shared machine's noise only adds time).
// Targets: ingest ≥ 0.9× sha256sum throughput, peak RSS ≤ 150 MiB.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const lib = resolve(here, '../../dist/storage/index.js');

if (process.argv[2] === '--child') {
  const [, , , file, cacheDir, sha256, size] = process.argv;
  const { openStore } = await import(pathToFileURL(lib).href);
  const store = await openStore({ cacheDir, write: true });
  const t0 = process.hrtime.bigint();
  await store.ingestStream({ sha256, size: Number(size) }, createReadStream(file, { highWaterMark: 1024 * 1024 }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await store.close();
  process.stdout.write(JSON.stringify({ secs, maxRssKiB: process.resourceUsage().maxRSS }) + '\n');
  process.exit(0);
}

const mib = Number(process.argv[2] ?? 1024);
const rounds = Number(process.argv[3] ?? 3);
const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-ingest-'));
try {
  const file = join(dir, 'big.bin');
  const out = createWriteStream(file);
  const block = randomBytes(1024 * 1024);
  const h = createHash('sha256');
  for (let i = 0; i < mib; i++) {
    block.writeUInt32LE(i, 0); // every MiB differs
    h.update(block);
    if (!out.write(Buffer.from(block))) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r) => out.end(r));
  const sha256 = h.digest('hex');
  const size = (await stat(file)).size;

  execFileSync('sync', [file]);
  execFileSync('sha256sum', [file]); // warm the page cache
  let shaSecs = Infinity;
  let secs = Infinity;
  let maxRssKiB = 0;
  const all = { sha: [], ingest: [] };
  for (let round = 0; round < rounds; round++) {
    const t0 = process.hrtime.bigint();
    const sum = execFileSync('sha256sum', [file]).toString().split(' ')[0];
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (sum !== sha256) throw new Error('sha256sum disagrees with node');
    all.sha.push(s);
    shaSecs = Math.min(shaSecs, s);
    const cache = join(dir, `cache${round}`);
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', file, cache, sha256, String(size)], {
      encoding: 'utf8',
    });
    if (child.status !== 0) throw new Error(`ingest child failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout);
    all.ingest.push(r.secs);
    secs = Math.min(secs, r.secs);
    maxRssKiB = Math.max(maxRssKiB, r.maxRssKiB);
    await rm(cache, { recursive: true, force: true });
    execFileSync('sync', [dir]); // the removed copy's writeback is not the next round's
  }
  const mibps = (s) => (size / 2 ** 20 / s).toFixed(0);
  const ratio = shaSecs / secs;
  console.log(`file: ${mib} MiB; best of ${rounds} rounds (sha256sum ${all.sha.map((x) => x.toFixed(2)).join('/')}, ingest ${all.ingest.map((x) => x.toFixed(2)).join('/')}); load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`sha256sum: ${shaSecs.toFixed(2)} s (${mibps(shaSecs)} MiB/s)`);
  console.log(`ingest:    ${secs.toFixed(2)} s (${mibps(secs)} MiB/s)  = ${ratio.toFixed(2)}x sha256sum (target >= 0.9)`);
  console.log(`peak RSS of the ingest process: ${(maxRssKiB / 1024).toFixed(0)} MiB (target <= 150)`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
