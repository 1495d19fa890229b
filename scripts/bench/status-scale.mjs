#!/usr/bin/env node
// Status and manifest verification at scale.
//
//   npm run build && node scripts/bench/status-scale.mjs [ARTIFACTS=100000]
//
// Signs a manifest of ARTIFACTS file artifacts (manifests/ code, a fresh
// ed25519 key and root), stores half of the blobs, then times:
//   verify  — verifyRelease of the envelope (signature, parse, schema…)
//   status  — store.status(release) in a fresh reader store (cold: parses the envelope file)
//   cli     — `node dist/server/cli/main.js status RELEASE` end to end (node start included)
// Targets: verify ≤ 2 s, status ≤ 2 s. AIRLOCK_BENCH_KEEP=1 keeps the cache folder.
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = resolve(here, '../../dist');
const m = await import(pathToFileURL(join(dist, 'manifests/index.js')).href);
const { openStore } = await import(pathToFileURL(join(dist, 'storage/index.js')).href);

const n = Number(process.argv[2] ?? 100_000);
const dir = await mkdtemp(join(tmpdir(), 'airlock-bench-status-'));
const time = async (fn) => {
  const t0 = process.hrtime.bigint();
  const r = await fn();
  return [Number(process.hrtime.bigint() - t0) / 1e9, r];
};
try {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
  const keyid = createHash('sha256').update(raw).digest('hex');
  const rootPayload = {
    type: 'airlock-root', spec: 1, version: 1, expires: '2099-01-01T00:00:00Z',
    keys: { [keyid]: { keytype: 'ed25519', public: raw.toString('base64') } },
    roles: { root: { keyids: [keyid], threshold: 1 }, release: { keyids: [keyid], threshold: 1 } },
  };
  const now = new Date();
  const rootBytes = m.signEnvelope(m.ROOT_PAYLOAD_TYPE, Buffer.from(m.canonicalize(rootPayload)), [privateKey]);
  const root = m.loadTrustedRoot(rootBytes, now);

  const cache = join(dir, 'cache');
  const artifacts = [];
  for (let i = 0; i < n; i++) {
    const body = Buffer.from(`artifact ${i}\n`);
    const sha256 = createHash('sha256').update(body).digest('hex');
    artifacts.push({ path: `files/f${i}.bin`, kind: 'file', sha256, size: body.length, urls: [`http://up.example/f${i}.bin`] });
    if (i % 2 === 0) {
      const p = join(cache, 'blobs', 'sha256', sha256.slice(0, 2), sha256);
      await mkdir(dirname(p), { recursive: true });
      await writeFile(p, body, { mode: 0o444 });
    }
  }
  const manifest = {
    type: 'airlock-release', spec: 1, product: 'bench', release: 'big-1', serial: 1,
    issued: '2026-01-01T00:00:00Z', expires: '2099-01-01T00:00:00Z', artifacts,
  };
  const envelope = m.signEnvelope(m.RELEASE_PAYLOAD_TYPE, Buffer.from(m.canonicalize(manifest)), [privateKey]);
  console.log(`manifest: ${n} artifacts, envelope ${(envelope.length / 2 ** 20).toFixed(1)} MiB; store holds ${Math.ceil(n / 2)} of the blobs`);

  const [verifySecs, verified] = await time(() => m.verifyRelease(envelope, { root, now }));
  console.log(`verify (verifyRelease):           ${verifySecs.toFixed(2)} s (target <= 2)`);

  const writer = await openStore({ cacheDir: cache, write: true });
  const [putSecs] = await time(() => writer.putRelease(verified));
  await writer.close();
  console.log(`putRelease (envelope file + level): ${putSecs.toFixed(2)} s`);

  const reader = await openStore({ cacheDir: cache });
  const [coldSecs, st] = await time(() => reader.status('big-1'));
  const [warmSecs] = await time(() => reader.status('big-1'));
  console.log(`status, cold (parse + check):     ${coldSecs.toFixed(2)} s (target <= 2); warm: ${warmSecs.toFixed(2)} s`);
  console.log(`  → ready=${st.ready} files present ${st.files.present}/${st.files.total}, missing blobs ${st.missing.length}`);

  const main = join(dist, 'server/cli/main.js');
  const [cliSecs] = await time(() => {
    try {
      execFileSync(process.execPath, [main, 'status', 'big-1', '--cache-dir', cache, '--json'], { maxBuffer: 1 << 30 });
    } catch (e) {
      if (e.status !== 1) throw e; // 1 = not ready, as expected
    }
  });
  console.log(`airlock status big-1 --json (CLI): ${cliSecs.toFixed(2)} s`);
} finally {
  if (process.env.AIRLOCK_BENCH_KEEP) console.log(`kept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
}
