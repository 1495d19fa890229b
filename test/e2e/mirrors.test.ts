/**
 * Tiered caches against the REAL world: a site cache stages the release
 * through squid (nginx, docker-registry), a real `airlock serve` serves it,
 * the world is switched off, and an empty rack cache whose airlock.yml says
 * `mirrors: [site]` stages the same release from the site cache alone: every
 * blob (image manifest included) byte-identical, `airlock status` ready.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTrust, releasePayload, signRelease, startWorld, type Trust, type World } from '../../scripts/world/index.js';
import { freePorts, httpStatus } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { AIRLOCK, cleanEnv, runCli } from '../support/cli.js';

/** Every stored blob under a cache, relative path → bytes. */
function blobs(cache: string): Map<string, Buffer> {
  const root = join(cache, 'blobs');
  const out = new Map<string, Buffer>();
  for (const e of readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.set(relative(root, join(e.parentPath, e.name)), readFileSync(join(e.parentPath, e.name)));
  }
  return out;
}

describe('airlock stage from a site cache (e2e: real world, then none)', () => {
  let world: World | null = null;
  let serve: Server | null = null;
  let tmp: string;
  let trust: Trust;
  let envelope: string;
  const RELEASE = '3.6.2';

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'airlock-mirrors-e2e-'));
    world = await startWorld();
    trust = makeTrust(join(tmp, 'keys'));
    envelope = join(tmp, 'envelope.json');
    writeFileSync(envelope, signRelease(releasePayload(world, { product: 'stackato', release: RELEASE, serial: 5 }), trust));
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    await world?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('a rack cache with mirrors: [site] stages the release with the world switched off', async () => {
    const w = world!;
    const site = join(tmp, 'site');
    const staged = await runCli(AIRLOCK, ['stage', envelope, '--cache-dir', site, '--trust', trust.rootJsonPath, '--insecure-registry', w.registryAddress, '--proxy', w.proxyUrl]);
    expect(staged.code, staged.stderr + staged.stdout).toBe(0);

    const [port] = await freePorts(1);
    const siteUrl = `http://127.0.0.1:${port}`;
    serve = startServer('airlock-serve-site', process.execPath, [AIRLOCK, 'serve', '--cache-dir', site, '--listen', `127.0.0.1:${port}`, '--grace', '1'], join(tmp, 'serve.log'), {
      env: cleanEnv(),
    });
    const end = Date.now() + 20_000;
    while ((await httpStatus(`${siteUrl}/healthz`).catch(() => 0)) !== 200) {
      if (Date.now() > end || serve.exited()) throw new Error(`airlock serve did not start: ${serve.exited() ?? serve.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // no upstream, no proxy from here on
    await w.stop();
    world = null;

    const rack = join(tmp, 'rack');
    const config = join(tmp, 'rack.yml');
    writeFileSync(config, `cache_dir: ${rack}\ntrust: ${trust.rootJsonPath}\ninsecure_registries: ["${w.registryAddress}"]\nmirrors: [${siteUrl}/]\n`);

    const plan = await runCli(AIRLOCK, ['stage', envelope, '--config', config, '--plan']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${port}\\s+http\\s+direct \\(mirror\\)`));

    const r = await runCli(AIRLOCK, ['stage', envelope, '--config', config]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const n = blobs(site).size;
    expect(r.stdout).toContain(`mirror ${siteUrl}: served ${n} files`);
    expect(r.stdout).toContain('0 not held there');

    const st = await runCli(AIRLOCK, ['status', RELEASE, '--cache-dir', rack]);
    expect(st.code, st.stderr + st.stdout).toBe(0);
    expect(st.stdout).toMatch(/ready/);

    // byte-identical: the same blobs, the same bytes
    const a = blobs(site);
    const b = blobs(rack);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) expect(b.get(k)!.equals(v), k).toBe(true);

    // the rack now stages again with nothing to fetch
    const again = await runCli(AIRLOCK, ['stage', envelope, '--config', config, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').pop()!)).toMatchObject({ ok: true, fetched: 0 });
  }, 240_000);
});
