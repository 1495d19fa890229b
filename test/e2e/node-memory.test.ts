/**
 * The memory of airlock-node downloading, measured as a whole process
 * (test/support/peak-rss.mjs: VmHWM): 8 nodes at once under `nice -n 10`
 * beside `airlock serve`, each pulling 4 blobs of 40 MiB with parallel 4,
 * each node's peak RSS ≤ 150 MiB. This test holds 256 MiB itself while it
 * spawns them: a measure that took the spawning process's RSS for the
 * node's (getrusage's ru_maxrss survives execve) would fail here, as it
 * made 50 nodes of scale-out.mjs look like 330 MiB each.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Artifact } from '../../manifests/types.js';
import { makeTrust, signRelease, type Trust } from '../../scripts/world/keys.js';
import { freePorts, httpStatus, waitUntil } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { AIRLOCK, NODE_CLI, REPO, cleanEnv, runCli } from '../support/cli.js';
import { releaseManifest } from '../support/release.js';
import { startFaultUpstream, sha256 } from '../support/fault-upstream.js';

const MiB = 2 ** 20;
const NODES = 8;
const LIMIT_MIB = 150;

let dir: string;
let trust: Trust;
let serve: Server;
let cacheUrl: string;

beforeAll(async () => {
  if (!existsSync(AIRLOCK) || !existsSync(NODE_CLI)) throw new Error('dist/ is missing: run npm run build (scripts/test.sh does)');
  dir = mkdtempSync(join(tmpdir(), 'airlock-node-memory-'));
  trust = makeTrust(join(dir, 'keys'));
  const cacheDir = join(dir, 'cache');
  const up = await startFaultUpstream();
  try {
    const artifacts: Artifact[] = [0, 1, 2, 3].map((i) => {
      const body = randomBytes(40 * MiB + i);
      const path = `components/part-${i}.bin`;
      up.files.set(`/${path}`, { body });
      return { path, kind: 'file', sha256: sha256(body), size: body.length, urls: [`${up.url}/${path}`] };
    });
    const envelope = join(dir, 'release.json');
    writeFileSync(
      envelope,
      signRelease(releaseManifest({ release: '1.0.0', serial: 1, artifacts }), trust),
    );
    const staged = await runCli(AIRLOCK, ['stage', envelope, '--cache-dir', cacheDir, '--trust', trust.rootJsonPath]);
    expect(staged.code, staged.stderr).toBe(0);
  } finally {
    await up.close();
  }
  const [port] = await freePorts(1);
  cacheUrl = `http://127.0.0.1:${port}`;
  serve = startServer('airlock-serve', process.execPath, [AIRLOCK, 'serve', '--cache-dir', cacheDir, '--listen', `127.0.0.1:${port}`, '--grace', '1'], join(dir, 'serve.log'), { env: cleanEnv() });
  await waitUntil('airlock serve', async () => (await httpStatus(`${cacheUrl}/healthz`)) === 200, serve.exited);
}, 180_000);

afterAll(async () => {
  await serve?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One node under nice, to its end: exit code, peak RSS in MiB, stderr. */
function node(i: number): Promise<{ code: number; peakMiB: number; stderr: string }> {
  return new Promise((done) => {
    const state = join(dir, `n${i}`);
    const child = spawn(
      'nice',
      ['-n', '10', process.execPath, '--import', join(REPO, 'test', 'support', 'peak-rss.mjs'), NODE_CLI, 'upgrade', '--cache', cacheUrl, '--release', '1.0.0', '--download-only', '--trust', trust.rootJsonPath, '--state-dir', state, '--root', join(state, 'root')],
      { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => done({ code: code ?? 1, peakMiB: Number(/peak-rss-kib (\d+)/.exec(stderr)?.[1] ?? 0) / 1024, stderr }));
  });
}

describe('airlock-node memory', () => {
  it(`${NODES} nodes at once, 160 MiB each, under nice beside the cache: each peaks at ≤ ${LIMIT_MIB} MiB, whatever the spawning process holds`, async () => {
    // what this process holds must not count as the nodes' memory
    const ballast = randomBytes(256 * MiB);
    const runs = await Promise.all(Array.from({ length: NODES }, (_, i) => node(i)));
    expect(ballast.length).toBe(256 * MiB);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.peakMiB, r.stderr).toBeGreaterThan(0);
      expect(r.peakMiB, r.stderr).toBeLessThanOrEqual(LIMIT_MIB);
    }
  }, 300_000);
});
