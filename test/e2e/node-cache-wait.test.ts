/**
 * A node riding out a cache that is briefly away (client/wait.ts), against
 * real processes: `airlock serve` over a release staged by `airlock stage`,
 * reached through an in-process front that answers 503 (with Retry-After) or
 * 404 before passing requests on, through a REAL haproxy running the shipped
 * example config during a restart of its only replica, and a cache where
 * nothing listens. No timing is asserted beyond a lower bound on a sleep.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Artifact } from '../../manifests/types.js';
import { openStore } from '../../storage/index.js';
import { statePaths } from '../../client/state.js';
import { makeTrust, signRelease, type Trust } from '../../scripts/world/keys.js';
import { freePorts, httpStatus, waitUntil } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { AIRLOCK, NODE_CLI, cleanEnv, runCli, type Run } from '../support/cli.js';
import { releaseManifest } from '../support/release.js';
import { startFaultUpstream, sha256 } from '../support/fault-upstream.js';
import { haproxyBinary, skipWithoutHaproxy, startHaproxy, type Haproxy } from '../support/haproxy.js';

const MiB = 2 ** 20;
const RELEASE = '1.0.0';

let dir: string;
let trust: Trust;
let cacheDir: string;
let artifacts: Artifact[];
let port: number;
let serve: Server;
let cacheUrl: string;

const startServe = async (): Promise<void> => {
  serve = startServer('airlock-serve', process.execPath, [AIRLOCK, 'serve', '--cache-dir', cacheDir, '--listen', `127.0.0.1:${port}`, '--grace', '1'], join(dir, 'serve.log'), { env: cleanEnv() });
  await waitUntil('airlock serve', async () => (await httpStatus(`${cacheUrl}/healthz`)) === 200, serve.exited);
};

const upgrade = (cache: string, name: string, extra: string[] = []): Promise<Run> =>
  runCli(NODE_CLI, ['upgrade', '--cache', cache, '--release', RELEASE, '--download-only', '--trust', trust.rootJsonPath, '--state-dir', join(dir, name), '--root', join(dir, `${name}-root`), ...extra]);

/** Every blob of the release is staged under the node's state dir, and hashes right (the store verified it). */
async function stagedAll(name: string): Promise<boolean> {
  const store = await openStore({ cacheDir: statePaths(join(dir, name)).staging });
  try {
    for (const a of artifacts) if (!(await store.stat(a.sha256))) return false;
    return true;
  } finally {
    await store.close();
  }
}

/** A front before the cache: `answer` may answer a request itself (a status and headers), else it goes through. */
async function front(answer: (path: string) => { status: number; headers?: Record<string, string> } | null): Promise<{ url: string; seen: Array<{ path: string; status: number; at: number }>; close(): Promise<void> }> {
  const seen: Array<{ path: string; status: number; at: number }> = [];
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const own = answer(path);
    if (own) {
      seen.push({ path, status: own.status, at: Date.now() });
      res.writeHead(own.status, own.headers ?? {}).end();
      return;
    }
    const up = http.request({ host: '127.0.0.1', port, path, method: req.method, headers: req.headers }, (r) => {
      seen.push({ path, status: r.statusCode ?? 0, at: Date.now() });
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

const waitLines = (stderr: string): string[] => stderr.split('\n').filter((l) => / trying again in \d/.test(l));

beforeAll(async () => {
  if (!existsSync(AIRLOCK) || !existsSync(NODE_CLI)) throw new Error('dist/ is missing: run npm run build (scripts/test.sh does)');
  dir = mkdtempSync(join(tmpdir(), 'airlock-node-wait-'));
  trust = makeTrust(join(dir, 'keys'));
  cacheDir = join(dir, 'cache');
  const up = await startFaultUpstream();
  try {
    artifacts = [3 * MiB + 17, MiB].map((size, i) => {
      const body = randomBytes(size);
      const path = `components/part-${i}.bin`;
      up.files.set(`/${path}`, { body });
      return { path, kind: 'file', sha256: sha256(body), size, urls: [`${up.url}/${path}`] };
    });
    const envelope = join(dir, 'release.json');
    writeFileSync(
      envelope,
      signRelease(releaseManifest({ release: RELEASE, serial: 1, artifacts }), trust),
    );
    const staged = await runCli(AIRLOCK, ['stage', envelope, '--cache-dir', cacheDir, '--trust', trust.rootJsonPath]);
    expect(staged.code, staged.stderr).toBe(0);
  } finally {
    await up.close();
  }
  [port] = (await freePorts(1)) as [number];
  cacheUrl = `http://127.0.0.1:${port}`;
  await startServe();
}, 120_000);

afterAll(async () => {
  await serve?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('airlock-node waits out a cache briefly away', () => {
  it("503s at the manifest and mid-download: waits (Retry-After honoured, one line per wait) and completes", async () => {
    let manifest503 = 0;
    let blob503 = 0;
    const f = await front((path) => {
      if (path.includes('/manifest') && manifest503 < 2) return manifest503++, { status: 503, headers: { 'retry-after': '2' } };
      // two blobs, three tries each within ingest: the fifth 503 ends a round at the latest, and the download's wait loop takes over
      if (path.includes('/blobs/') && blob503 < 6) return blob503++, { status: 503 };
      return null;
    });
    try {
      const r = await upgrade(f.url, 'n503', ['--wait-for-cache', '2m']);
      expect(r.code, r.stderr).toBe(0);
      expect(await stagedAll('n503')).toBe(true);
      const lines = waitLines(r.stderr);
      expect(lines.slice(0, 2)).toEqual([
        `warning: cache ${f.url} answered 503; trying again in 2 s (2m left)`,
        expect.stringMatching(new RegExp(`^warning: cache ${f.url} answered 503; trying again in 2 s \\((1m 5\\ds|2m)`)),
      ]);
      expect(lines.length).toBeGreaterThanOrEqual(3);
      expect(lines.slice(2).every((l) => l.includes(`cache ${f.url} answered 503; trying again in`))).toBe(true);
      // Retry-After: 2 was waited (a lower bound only: a sleep is never shorter)
      const m = f.seen.filter((s) => s.path.includes('/manifest'));
      expect(m.map((s) => s.status)).toEqual([503, 503, 200]);
      expect(m[1]!.at - m[0]!.at).toBeGreaterThanOrEqual(1900);
    } finally {
      await f.close();
    }
  }, 120_000);

  it('a 404 of a blob the manifest names is the answer: no waiting, ENOTFOUND in one line', async () => {
    const f = await front((path) => (path.includes('/blobs/') ? { status: 404 } : null));
    try {
      const r = await upgrade(f.url, 'n404', ['--wait-for-cache', '2m']);
      expect(r.code).not.toBe(0);
      expect(waitLines(r.stderr)).toEqual([]);
      const last = r.stderr.trim().split('\n').pop()!;
      expect(last).toMatch(/ENOTFOUND/);
      expect(last).toContain(f.url);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await f.close();
    }
  }, 60_000);

  it('--wait-for-cache 2s against a cache where nothing listens: waits, then fails in one line with EUPSTREAM, exit 5', async () => {
    const [dead] = await freePorts(1);
    const url = `http://127.0.0.1:${dead}`;
    const r = await upgrade(url, 'ndead', ['--wait-for-cache', '2s']);
    expect(r.code, r.stderr).toBe(5);
    expect(waitLines(r.stderr).length).toBeGreaterThanOrEqual(1);
    expect(waitLines(r.stderr)[0]).toMatch(new RegExp(`^warning: cache ${url} refused the connection; trying again in \\d+ s \\(2 s left\\)$`));
    const last = r.stderr.trim().split('\n').pop()!;
    expect(last).toMatch(/EUPSTREAM/);
    expect(last).toContain(url);
    expect(last).toMatch(/ECONNREFUSED/);
    expect(last).toMatch(/did not come back within 2 s/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it('--wait-for-cache 0: the first refusal is the answer, as before', async () => {
    const [dead] = await freePorts(1);
    const r = await upgrade(`http://127.0.0.1:${dead}`, 'nzero', ['--wait-for-cache', '0']);
    expect(r.code, r.stderr).toBe(5);
    expect(waitLines(r.stderr)).toEqual([]);
  }, 60_000);

  it('--cache A,B: B serves at once when A is down (no waiting)', async () => {
    const [dead] = await freePorts(1);
    const r = await upgrade(`http://127.0.0.1:${dead},${cacheUrl}`, 'nfailover', ['--wait-for-cache', '2m']);
    expect(r.code, r.stderr).toBe(0);
    expect(waitLines(r.stderr)).toEqual([]);
    expect(await stagedAll('nfailover')).toBe(true);
  }, 60_000);
});

describe.skipIf(skipWithoutHaproxy)('behind a real haproxy whose only replica restarts', () => {
  let haproxy: Haproxy;
  beforeAll(async () => {
    if (!haproxyBinary()) throw new Error('haproxy is not installed: run scripts/setup.sh as root');
    haproxy = await startHaproxy([port]);
  }, 60_000);
  afterAll(async () => {
    await haproxy?.stop();
  });

  it('no live server (503 from haproxy): the node waits, and completes once the replica is back', async () => {
    await serve.stop();
    // the example's checks take a replica that refuses connections out in a few seconds
    await waitUntil('haproxy to take the replica out', async () => (await httpStatus(`${haproxy.url}/healthz`)) === 503, () => null, 60_000);
    const child = spawn(
      process.execPath,
      [NODE_CLI, 'upgrade', '--cache', haproxy.url, '--release', RELEASE, '--download-only', '--trust', trust.rootJsonPath, '--state-dir', join(dir, 'nha'), '--root', join(dir, 'nha-root'), '--wait-for-cache', '3m'],
      { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const exited = new Promise<number>((r) => child.on('exit', (code) => r(code ?? 1)));
    try {
      await waitUntil('the node to wait', async () => waitLines(stderr).length >= 1, () => null, 60_000);
      expect(waitLines(stderr)[0]).toMatch(new RegExp(`^warning: cache ${haproxy.url} answered 503; trying again in \\d+ s \\((3m|2m 5\\ds) left\\)$`));
      await startServe();
      const code = await exited;
      expect(code, stderr).toBe(0);
      expect(await stagedAll('nha')).toBe(true);
    } finally {
      child.kill('SIGKILL');
      if (serve.exited() !== null) await startServe();
    }
  }, 240_000);
});
