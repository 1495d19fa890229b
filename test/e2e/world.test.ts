/**
 * The test world itself: real nginx, docker-registry and squid on loopback.
 * Proves the upstreams are reachable by their fake names through squid only,
 * and that squid's log records the traffic (what other e2e tests rely on).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releasePayload, startWorld, type World } from '../../scripts/world/index.js';

const pexec = promisify(execFile);

/** curl's exit code and body; never throws */
async function curl(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await pexec('curl', ['-sS', '--max-time', '10', ...args], { env, encoding: 'utf8' });
    return { code: 0, stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, stdout: err.stdout ?? '' };
  }
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|no|all)_proxy$/i.test(k)) delete env[k];
  return env;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('test world', () => {
  let world: World;
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'airlock-world-test-'));
    world = await startWorld();
  });
  afterAll(async () => {
    await world?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('hands out artifacts with proxy-only URLs and true digests', () => {
    const kinds = world.artifacts.map((a) => a.kind);
    expect(kinds.filter((k) => k === 'deb').length).toBeGreaterThanOrEqual(5);
    expect(kinds.filter((k) => k === 'gem')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'file')).toHaveLength(2);
    for (const a of world.artifacts) {
      const bytes = readFileSync(a.localPath);
      expect(bytes.length, a.path).toBe(a.size);
      expect(sha256(bytes), a.path).toBe(a.sha256);
      expect(a.urls[0]).toMatch(/^http:\/\/(debs|gems|files)\.upstream\.test:\d+\//);
    }
    const hello = world.artifacts.find((a) => a.kind === 'deb' && a.package === 'hello');
    expect(hello).toMatchObject({ version: '2.10-3', arch: 'amd64', path: 'debs/hello_2.10-3_amd64.deb' });
  });

  it('serves a deb and a gem through squid, and squid logs them', async () => {
    const deb = world.artifacts.find((a) => a.kind === 'deb' && a.package === 'jq')!;
    const gem = world.artifacts.find((a) => a.kind === 'gem' && a.version === '0.2.0')!;
    for (const a of [deb, gem]) {
      const out = join(tmp, a.path.replace(/\//g, '_'));
      const r = await curl(['-f', '-x', world.proxyUrl, '-o', out, a.urls[0]]);
      expect(r.code, a.urls[0]).toBe(0);
      expect(sha256(readFileSync(out))).toBe(a.sha256);
      const entry = await world.waitForSquidLog((e) => e.method === 'GET' && e.url === a.urls[0]);
      expect(entry.status).toBe(200);
      expect(entry.bytes).toBeGreaterThan(a.size);
    }
  });

  it('serves the image through squid to skopeo, by its fake registry name', async () => {
    const image = world.image!;
    expect(image.reference).toBe(`${world.registryAddress}/demo/app:1.0`);
    expect(image.layers.length).toBeGreaterThanOrEqual(2);
    expect(image.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    const { stdout } = await pexec('skopeo', ['inspect', '--tls-verify=false', `docker://${image.reference}`], {
      env: { ...cleanEnv(), ...world.proxyEnv }, timeout: 30_000,
    });
    const info = JSON.parse(stdout) as { Digest: string; Architecture: string; Layers: string[] };
    expect(info.Digest).toBe(image.digest);
    expect(info.Architecture).toBe('amd64');
    expect(info.Layers).toEqual(image.layers.map((l) => `sha256:${l.sha256}`));
    const manifestUrl = `http://${world.registryAddress}/v2/demo/app/manifests/1.0`;
    const entry = await world.waitForSquidLog((e) => e.url === manifestUrl && e.status === 200);
    expect(entry.method).toMatch(/^(GET|HEAD)$/);

    // the Docker v2s2 tag and the index are there too, with the digests the world reports
    for (const m of [image.docker, image.index]) {
      const r = await curl(['-fI', '-x', world.proxyUrl, '-H', 'Accept: ' + m.mediaType, `http://${world.registryAddress}/v2/demo/app/manifests/${m.tag}`]);
      expect(r.code).toBe(0);
      expect(r.stdout.toLowerCase()).toContain(`docker-content-digest: ${m.digest}`);
    }
  });

  it('fake names resolve nowhere but in squid', async () => {
    for (const host of Object.values(world.upstreams).map((u) => u.host)) {
      // files only (/etc/hosts): a DNS query would leave 127.0.0.0/8
      const r = await pexec('getent', ['-s', 'files', 'hosts', host]).then(() => 0, (e: { code?: number }) => e.code);
      expect(r, host).toBe(2);
    }
    // the server itself is there: only the name is squid's
    const deb = world.artifacts.find((a) => a.kind === 'deb')!;
    expect((await curl(['-fo', '/dev/null', deb.directUrl])).code).toBe(0);
  });

  it('stops and restarts the upstreams behind a live proxy', async () => {
    const file = world.artifacts.find((a) => a.path === 'files/app.tar.gz')!;
    await world.stopUpstreams();
    const down = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', world.proxyUrl, file.urls[0]]);
    expect(down.stdout).toBe('503');
    await world.startUpstreams();
    const up = await curl(['-f', '-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', world.proxyUrl, file.urls[0]]);
    expect(up.stdout).toBe('200');
  });

  it('builds a release payload with the image and proxy-only URLs', () => {
    const p = releasePayload(world, { product: 'demo', release: '1.0', serial: 1, issued: '2026-01-01T00:00:00Z' });
    expect(p).toMatchObject({ type: 'airlock-release', spec: 1, product: 'demo', release: '1.0', serial: 1, issued: '2026-01-01T00:00:00Z', expires: '2026-01-31T00:00:00Z' });
    const img = p.artifacts.find((a) => a.kind === 'oci-image');
    expect(img).toMatchObject({ path: 'images/demo/app', image: world.image!.reference, mediaType: world.image!.mediaType, size: world.image!.size });
    expect(p.artifacts).toHaveLength(world.artifacts.length + 1);
    for (const a of p.artifacts) expect(Object.keys(a)).not.toContain('localPath');
    const some = releasePayload(world, { product: 'demo', release: '1.0', serial: 2, select: ['gems/rcdemo-0.1.0.gem'] });
    expect(some.artifacts.map((a) => a.path)).toEqual(['gems/rcdemo-0.1.0.gem']);
  });
});

describe('scripts/world/start.js (demo and benchmarks)', () => {
  it('writes world.json, serves until SIGTERM, then stops everything', async () => {
    const { spawn } = await import('node:child_process');
    const { existsSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const cli = fileURLToPath(new URL('../../dist/scripts/world/start.js', import.meta.url));
    expect(existsSync(cli), `${cli} missing: run npm run build (scripts/test.sh does)`).toBe(true);
    const dir = await mkdtemp(join(tmpdir(), 'airlock-world-cli-'));
    try {
      const child = spawn(process.execPath, [cli, '--dir', dir, '--no-registry', '--extra', '2x1000'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const deadline = Date.now() + 30_000;
      while (!existsSync(join(dir, 'world.json')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const info = JSON.parse(readFileSync(join(dir, 'world.json'), 'utf8')) as World;
      expect(info.artifacts.filter((a) => a.extra)).toHaveLength(2);
      const extra = info.artifacts.find((a) => a.extra)!;
      const r = await curl(['-f', '-o', '/dev/null', '-w', '%{size_download}', '-x', info.proxyUrl, extra.urls[0]]);
      expect(r.stdout).toBe('1000');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect((await curl(['-o', '/dev/null', info.upstreams.files.direct + '/'])).code).toBe(7); // connection refused
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
