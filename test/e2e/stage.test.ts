/**
 * `airlock stage` against the REAL world: nginx (debs, gems, tarballs) and
 * docker-registry (an OCI image) reachable only by fake host names that only
 * squid resolves. Every upstream request must show in squid's access log;
 * SIGKILLs of the compiled CLI at several points must leave a cache that a
 * re-run completes, with `status` ready and `verify` clean.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LookupFunction } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTrust, releasePayload, signRelease, startWorld, type Trust, type World } from '../../scripts/world/index.js';
import { loadConfig } from '../../server/config.js';
import { stageRelease } from '../../server/stage/stage.js';
import { createOutput } from '../../common/output.js';
import { AIRLOCK, cleanEnv, runCli, type Run } from '../support/cli.js';


function run(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Run> {
  return runCli(AIRLOCK, args, env);
}

/** Bytes under a folder (0 when it does not exist), read while a stager renames files in it. */
function bytesUnder(dir: string): number {
  let n = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      // a partial renamed into blobs/ between the listing and the stat is simply not counted
      if (e.isFile()) n += statSync(join(e.parentPath, e.name), { throwIfNoEntry: false })?.size ?? 0;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return n;
}

/** Starts `airlock stage` and SIGKILLs it as soon as `when()` holds (or it exits by itself). */
async function stageAndKill(args: string[], when: () => boolean): Promise<'killed' | number> {
  const child = spawn(process.execPath, [AIRLOCK, ...args], { env: cleanEnv(), stdio: 'ignore' });
  const exited = new Promise<number>((r) => child.once('exit', (code) => r(code ?? -1)));
  let killed = false;
  const poll = setInterval(() => {
    if (!killed && when()) {
      killed = true;
      child.kill('SIGKILL');
    }
  }, 5);
  const code = await exited;
  clearInterval(poll);
  return killed ? 'killed' : code;
}

describe('airlock stage (e2e, real world through squid)', () => {
  let world: World;
  let tmp: string;
  let trust: Trust;
  let envelope: string;
  const RELEASE = '3.6.2';

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'airlock-stage-e2e-'));
    world = await startWorld({ bigFileSize: 24 * 1024 * 1024 });
    trust = makeTrust(join(tmp, 'keys'));
    envelope = join(tmp, 'envelope.json');
    writeFileSync(envelope, signRelease(releasePayload(world, { product: 'stackato', release: RELEASE, serial: 5 }), trust));
  }, 120_000);

  afterAll(async () => {
    await world?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const common = (cache: string): string[] => ['--cache-dir', cache, '--trust', trust.rootJsonPath, '--insecure-registry', world.registryAddress];

  it('--plan prints hosts and bytes and changes nothing', async () => {
    const cache = join(tmp, 'plan-cache');
    const r = await run(['stage', envelope, '--plan', ...common(cache), '--proxy', world.proxyUrl]);
    expect(r.code, r.stderr).toBe(0);
    for (const up of Object.values(world.upstreams)) expect(r.stdout).toContain(`${up.host}:${up.port}`);
    expect(r.stdout).toContain(world.proxyUrl);
    expect(r.stdout).toMatch(/to fetch \(\d+(\.\d)? MiB\)/);
    expect(existsSync(cache)).toBe(false);
  });

  it('cannot reach the fake upstream names without the proxy (nothing resolved, nothing staged)', async () => {
    const asked: string[] = [];
    // a DNS that answers nothing: no query leaves the machine, and we see what was asked
    const lookup = ((host: string, _o: unknown, cb: unknown) => {
      asked.push(host);
      const done = (typeof _o === 'function' ? _o : cb) as (e: Error) => void;
      done(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }));
    }) as unknown as LookupFunction;
    const cache = join(tmp, 'noproxy-cache');
    const config = loadConfig({ cacheDir: cache, trust: trust.rootJsonPath, insecureRegistry: [world.registryAddress] }, tmp);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const logBefore = world.squidLog().length;
    await expect(
      stageRelease(config, createOutput(true, { stdout: sink, stderr: sink }), { source: envelope }, { http: { env: {}, dnsLookup: lookup }, retries: 1 }),
    ).rejects.toMatchObject({ code: 'EUPSTREAM' });
    expect(asked.some((h) => h.endsWith('.upstream.test'))).toBe(true);
    expect(world.squidLog().length).toBe(logBefore);
    const status = await run(['status', RELEASE, '--cache-dir', cache]);
    expect(status.code).not.toBe(0);
  });

  it('survives SIGKILL at several points; the re-run is ready, verify is clean, squid saw every request', async () => {
    const cache = join(tmp, 'cache');
    const args = ['stage', envelope, ...common(cache), '--proxy', world.proxyUrl, '--parallel', '4'];
    const partial = join(cache, 'partial');
    const blobs = join(cache, 'blobs');
    const logBefore = world.squidLog().length;

    // 1. right after the lock and index appear (before or at the first byte)
    expect(await stageAndKill(args, () => existsSync(join(cache, 'index')))).toBe('killed');
    // 2. mid-download: some bytes sit in partial files
    const k2 = await stageAndKill(args, () => bytesUnder(partial) > 2 * 1024 * 1024);
    // 3. after some blobs were committed
    const k3 = await stageAndKill(args, () => readdirSafe(blobs) >= 3);
    expect([k2, k3]).toContain('killed');

    const r = await run([...args, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const final = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ok: boolean; ready: boolean };
    expect(final).toMatchObject({ ok: true, ready: true });

    const status = await run(['status', RELEASE, '--cache-dir', cache]);
    expect(status.code, status.stdout + status.stderr).toBe(0);
    const verify = await run(['verify', '--cache-dir', cache]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);

    // every upstream URL went through squid (absolute-URI GETs name them)
    const urls = new Set(world.squidLog().slice(logBefore).map((e) => e.url));
    for (const a of world.artifacts) expect([...urls].some((u) => u === a.urls[0]), a.urls[0]).toBe(true);
    const img = world.image!;
    const base = `http://${world.registryAddress}/v2/${img.repository}`;
    expect(urls.has(`${base}/manifests/${img.digest}`)).toBe(true);
    for (const b of img.blobs) expect(urls.has(`${base}/blobs/sha256:${b.sha256}`), b.sha256).toBe(true);
  });

  it('uses http_proxy from the environment; an unreachable upstream is exit 5 and status lists what is missing', async () => {
    const cache = join(tmp, 'env-cache');
    await world.stopUpstreams();
    let r: Run;
    try {
      r = await run(['stage', envelope, ...common(cache)], cleanEnv(world.proxyEnv));
    } finally {
      await world.startUpstreams();
    }
    expect(r.code, r.stderr).toBe(5);
    const status = await run(['status', RELEASE, '--cache-dir', cache, '--json']);
    expect(status.code).not.toBe(0);
    const missing = (JSON.parse(status.stdout.trim().split('\n').at(-1)!) as { status: { missing: unknown[] } }).status.missing;
    expect(missing.length).toBeGreaterThan(0);
    const again = await run(['stage', envelope, ...common(cache)], cleanEnv(world.proxyEnv));
    expect(again.code, again.stderr).toBe(0);
    expect((await run(['status', RELEASE, '--cache-dir', cache])).code).toBe(0);
  });
});

function readdirSafe(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0; // not there yet, or changing under the walk
    throw e;
  }
}
