/**
 * Tiered caches at unit level: a site cache (staged in-process from a fault
 * upstream, then served by a real `airlock serve`) is the mirror of an empty
 * rack cache staged in-process. The mirror lies about one blob (its file
 * corrupted on disk), lacks another (deleted), holds the rest; the upstream
 * serves what the mirror could not, through the site proxy, while the mirror
 * itself is reached directly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { loadConfig, type CommonFlags } from '../../../server/config.js';
import { stageRelease, type StageDeps } from '../../../server/stage/stage.js';
import { createOutput, type Output } from '../../../common/output.js';
import { openStore } from '../../../storage/index.js';
import type { Artifact, ReleaseManifest } from '../../../manifests/types.js';
import { makeTrust, signRelease, type Trust } from '../../../scripts/world/keys.js';
import { sha256, startFaultUpstream, startTestProxy, type FaultUpstream, type RegistryImage, type TestProxy } from '../../support/fault-upstream.js';
import { freePorts, httpStatus } from '../../../scripts/world/net.js';
import { startServer, type Server } from '../../../scripts/world/proc.js';
import { AIRLOCK, cleanEnv, runCli } from '../../support/cli.js';

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed * 2654435761;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function capture(): { out: Output; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(c, _e, cb) {
      chunks.push(String(c));
      cb();
    },
  });
  return {
    out: createOutput(true, { stdout: sink, stderr: sink }),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const deps: StageDeps = { http: { env: {}, stallTimeoutMs: 2000 }, retries: 2, backoffMs: 50 };

let dir: string;
let up: FaultUpstream;
let proxy: TestProxy;
let trust: Trust;
let serve: Server | null = null;
let site: string;
let envelope: string;
const body = { good: bytes(700_000, 1), lie: bytes(300_000, 2), gone: bytes(200_000, 3) };
let image: { image: RegistryImage; artifact: Extract<Artifact, { kind: 'oci-image' }> };

const config = (cache: string, extra: Partial<CommonFlags> = {}) =>
  loadConfig({ cacheDir: join(dir, cache), trust: trust.rootJsonPath, insecureRegistry: [`127.0.0.1:${up.port}`], ...extra }, dir);

function fileArtifact(path: string, b: Buffer): Artifact {
  up.files.set(`/${path}`, { body: b });
  return { path, kind: 'file', sha256: sha256(b), size: b.length, urls: [`${up.url}/${path}`] };
}

/** An OCI image in the fault registry: config + one layer. */
function makeImage(name: string): typeof image {
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const l1 = bytes(250_000, 21);
  const ref = (b: Buffer, mediaType: string) => ({ mediaType, digest: `sha256:${sha256(b)}`, size: b.length });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: ref(cfg, 'application/vnd.oci.image.config.v1+json'),
      layers: [ref(l1, 'application/vnd.oci.image.layer.v1.tar+gzip')],
    }),
  );
  const md = `sha256:${sha256(manifest)}`;
  return {
    image: {
      name,
      tags: { '1.0': md },
      manifests: { [md]: { body: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } },
      blobs: { [`sha256:${sha256(cfg)}`]: cfg, [`sha256:${sha256(l1)}`]: l1 },
    },
    artifact: {
      path: `images/${name}`,
      kind: 'oci-image',
      sha256: sha256(manifest),
      size: manifest.length,
      image: `127.0.0.1:${up.port}/${name}:1.0`,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      blobs: [cfg, l1].map((b) => ({ sha256: sha256(b), size: b.length })),
    },
  };
}

function blobFile(cache: string, hex: string): string {
  return join(cache, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

async function has(cache: string, digest: string): Promise<boolean> {
  const s = await openStore({ cacheDir: cache });
  try {
    return (await s.stat(digest)) !== null;
  } finally {
    await s.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-mirrors-'));
  up = await startFaultUpstream();
  proxy = await startTestProxy();
  trust = makeTrust(join(dir, 'keys'));
  image = makeImage('demo/app');
  up.registry([image.image]);
  const now = Date.now();
  const m: ReleaseManifest = {
    type: 'airlock-release',
    spec: 1,
    product: 'stackato',
    release: '3.6.1',
    serial: 1,
    issued: new Date(now - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    expires: new Date(now + 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    artifacts: [fileArtifact('c/good.tgz', body.good), fileArtifact('c/lie.tgz', body.lie), fileArtifact('c/gone.tgz', body.gone), image.artifact],
  };
  envelope = join(dir, 'release.json');
  writeFileSync(envelope, signRelease(m, trust));

  // the site cache: staged from upstream, then one blob corrupted on disk and one removed, then served
  site = join(dir, 'site');
  const s = await stageRelease(config('site'), capture().out, { source: envelope }, deps);
  expect(s.fetched).toBe(6);
  const lie = blobFile(site, sha256(body.lie));
  chmodSync(lie, 0o644);
  const bad = readFileSync(lie);
  bad[1000] ^= 0xff;
  writeFileSync(lie, bad);
  unlinkSync(blobFile(site, sha256(body.gone)));
  const [port] = await freePorts(1);
  serve = startServer('airlock-serve-site', process.execPath, [AIRLOCK, 'serve', '--cache-dir', site, '--listen', `127.0.0.1:${port}`, '--grace', '1'], join(dir, 'serve.log'), {
    env: cleanEnv(),
  });
  const end = Date.now() + 20_000;
  while ((await httpStatus(`http://127.0.0.1:${port}/healthz`).catch(() => 0)) !== 200) {
    if (Date.now() > end || serve.exited()) throw new Error(`airlock serve did not start: ${serve.exited() ?? serve.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  siteUrl = `http://127.0.0.1:${port}`;
}, 60_000);

let siteUrl: string;

afterAll(async () => {
  await serve?.stop();
  await proxy?.close();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('stage from a mirror (another airlock cache)', () => {
  it('the mirror serves image manifests by digest at /blobs/sha256/HEX too', async () => {
    const res = await fetch(`${siteUrl}/blobs/sha256/${image.artifact.sha256}`);
    expect(res.status).toBe(200);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(image.artifact.sha256);
  });

  it('takes what the mirror holds; a lying mirror and a 404 fall back to the upstream URL; the mirror is reached directly', async () => {
    const rack = join(dir, 'rack');
    const before = up.requests.length;
    const c = capture();
    const s = await stageRelease(config('rack', { mirror: [siteUrl], proxy: proxy.url }), c.out, { source: envelope }, deps);
    expect(s.fetched).toBe(6);
    for (const b of [body.good, body.lie, body.gone]) expect(await has(rack, sha256(b))).toBe(true);
    // byte-identical to what the publisher signed
    expect(sha256(readFileSync(blobFile(rack, sha256(body.lie))))).toBe(sha256(body.lie));

    // upstream was asked for exactly the two files the mirror could not give, through the proxy
    const upstream = up.requests.slice(before).map((r) => r.path);
    expect(upstream.sort()).toEqual(['/c/gone.tgz', '/c/lie.tgz']);
    expect(proxy.log.filter((l) => l.includes(siteUrl.replace('http://', '')))).toEqual([]);
    expect(proxy.log.some((l) => l.includes('/c/lie.tgz'))).toBe(true);

    const bySha = new Map(s.sources.map((a) => [a.sha256, a]));
    const lie = bySha.get(sha256(body.lie))!;
    expect(lie.url).toBe(`${up.url}/c/lie.tgz`);
    expect(lie.mirror).toBeUndefined();
    expect(lie.failed).toEqual([expect.objectContaining({ url: `${siteUrl}/blobs/sha256/${sha256(body.lie)}`, code: 'EINTEGRITY' })]);
    const gone = bySha.get(sha256(body.gone))!;
    expect(gone.failed).toEqual([]);
    expect(gone.mirror).toBeUndefined();
    expect(gone.lackedBy).toEqual([siteUrl]);
    const good = bySha.get(sha256(body.good))!;
    expect(good.mirror).toBe(siteUrl);
    expect(good.url).toBe(`${siteUrl}/blobs/sha256/${sha256(body.good)}`);
    // the image manifest and its blobs came from the mirror as well
    expect(bySha.get(image.artifact.sha256)!.mirror).toBe(siteUrl);
    for (const b of image.artifact.blobs) expect(bySha.get(b.sha256)!.mirror).toBe(siteUrl);

    expect(s.mirrors).toEqual([{ url: siteUrl, files: 4, bytes: body.good.length + image.artifact.size + image.artifact.blobs.reduce((n, b) => n + b.size, 0), lacked: 1, failed: 1, down: null }]);
    // the per-file report names the mirror
    const fetched = c.lines().filter((l) => l.event === 'fetched');
    expect(fetched.find((l) => l.sha256 === sha256(body.good))).toMatchObject({ mirror: siteUrl });
    expect(fetched.find((l) => l.sha256 === sha256(body.gone))).toMatchObject({ mirror: null, url: `${up.url}/c/gone.tgz` });
  });

  it('a mirror that is down is given up at once (one warning), the upstream serves everything', async () => {
    const [dead] = await freePorts(1);
    const c = capture();
    const t0 = Date.now();
    const s = await stageRelease(config('rack-dead', { mirror: [`http://127.0.0.1:${dead}/`], parallel: '1' }), c.out, { source: envelope }, deps);
    expect(s.fetched).toBe(6);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(s.mirrors[0]).toMatchObject({ url: `http://127.0.0.1:${dead}`, files: 0, down: expect.stringContaining('ECONNREFUSED') });
    const warnings = c.lines().filter((l) => l.event === 'warning' && String(l.message).includes('given up'));
    expect(warnings).toHaveLength(1);
    // only the first blob tried it: the others were started without the mirror
    expect(s.sources.filter((a) => a.failed.length > 0)).toHaveLength(1);
  });

  it('a mirror whose host drops the connection attempt (connect timeout) is given up at once too', async () => {
    // a socket that listens and never accepts: once its queue is full, the kernel drops further SYNs
    const holder = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const port = Number((await once(holder.stdout!, 'data'))[0].toString().trim());
      const fill = [0, 1, 2].map(() => net.connect(port, '127.0.0.1').on('error', () => {}));
      await new Promise((r) => setTimeout(r, 300));
      const c = capture();
      const t0 = Date.now();
      const s = await stageRelease(config('rack-blackhole', { mirror: [`http://127.0.0.1:${port}`], parallel: '1' }), c.out, { source: envelope }, {
        ...deps,
        http: { ...deps.http, connectTimeoutMs: 500 },
      });
      fill.forEach((f) => f.destroy());
      expect(s.fetched).toBe(6);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(s.mirrors[0]).toMatchObject({ files: 0, down: expect.stringContaining('timed out') });
      expect(s.sources.filter((a) => a.failed.length > 0)).toHaveLength(1);
    } finally {
      holder.kill();
    }
  });

  it('--plan lists the mirror first in its host table, reached directly', async () => {
    const r = await runCli(AIRLOCK, ['stage', envelope, '--plan', '--cache-dir', join(dir, 'plan'), '--trust', trust.rootJsonPath, '--mirror', siteUrl, '--proxy', proxy.url], cleanEnv());
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => /^\s+\S+:\d+\s/.test(l));
    expect(rows[0]).toMatch(new RegExp(`^\\s+${siteUrl.replace('http://', '')}\\s+http\\s+direct \\(mirror\\)\\s+6\\s`));
    expect(r.stdout).toContain(proxy.url.replace(/\/$/, ''));
  });

  it('a mirror that is not an http(s) URL is one EUSAGE line', async () => {
    const r = await runCli(AIRLOCK, ['stage', envelope, '--plan', '--cache-dir', join(dir, 'plan'), '--trust', trust.rootJsonPath, '--mirror', 'site-cache:7070'], cleanEnv());
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/EUSAGE: --mirror: a mirror is the base URL of another airlock cache/);
  });
});

describe('mirrors in the config', () => {
  it('reads mirrors: from airlock.yml (trailing / dropped); --mirror replaces them; a bad one names the key', () => {
    const cfgDir = mkdtempSync(join(tmpdir(), 'airlock-mirrors-cfg-'));
    try {
      writeFileSync(join(cfgDir, 'airlock.yml'), 'mirrors: [http://site-cache:7070/, "https://site-2.example:8443/airlock/"]\n');
      expect(loadConfig({}, cfgDir).mirrors).toEqual(['http://site-cache:7070', 'https://site-2.example:8443/airlock']);
      expect(loadConfig({ mirror: ['http://rack-7:7070'] }, cfgDir).mirrors).toEqual(['http://rack-7:7070']);
      writeFileSync(join(cfgDir, 'airlock.yml'), 'mirrors: [ftp://site-cache/]\n');
      expect(() => loadConfig({}, cfgDir)).toThrow(/airlock\.yml: mirrors: a mirror is the base URL of another airlock cache/);
    } finally {
      rmSync(cfgDir, { recursive: true, force: true });
    }
  });
});
