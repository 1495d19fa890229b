/**
 * /metrics as operators scrape and alert on it: `promtool check metrics`
 * (Debian's prometheus package) accepts the whole page, process metrics
 * included; the store gauges tell its size, free disk and ready releases;
 * POST /stage runs count bytes, files and failures by code.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReleaseManifest } from '../../../manifests/index.js';
import { makeTrust, signRelease } from '../../../scripts/world/keys.js';
import type { AirlockConfig } from '../../../server/config.js';
import { createServer, inProcessStager } from '../../../server/http/index.js';
import { createMetrics } from '../../../server/http/metrics.js';
import { openStore, type Store } from '../../../storage/index.js';
import { json, raw } from './client.js';

const dirs: string[] = [];
const servers: http.Server[] = [];
let store: Store;
let port: number;
let body: Buffer;

const listen = async (s: http.Server): Promise<number> => {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as net.AddressInfo).port;
};

function promtool(text: string): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    const p = execFile('promtool', ['check', 'metrics'], { timeout: 30_000 }, (e, stdout, stderr) =>
      done({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
    );
    p.stdin!.end(text);
  });
}

const sample = (text: string, name: string): number | null => {
  const m = new RegExp(`^${name.replace(/[{}"=]/g, (c) => `\\${c}`)} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
};

async function stageAndWait(envelope: Buffer): Promise<any> {
  const r = await raw(port, '/stage', {
    method: 'POST', headers: { Authorization: 'Bearer tok', 'Content-Type': 'application/json' },
    body: JSON.stringify({ envelope: envelope.toString() }),
  });
  expect(r.status, r.body.toString()).toBe(202);
  for (let i = 0; i < 200; i++) {
    const status = json(await raw(port, '/stage'));
    if (status.running === null && status.last) return status.last;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('staging did not finish');
}

let trust: ReturnType<typeof makeTrust>;
let upstreamPort: number;
const payloadOf = (release: string, serial: number, artifacts: ReleaseManifest['artifacts']): ReleaseManifest => {
  const now = Date.now();
  return {
    type: 'airlock-release', spec: 1, product: 'stackato', release, serial,
    issued: new Date(now - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    expires: new Date(now + 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    artifacts,
  };
};

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-metrics-'));
  dirs.push(dir);
  body = Buffer.from('component bytes\n'.repeat(4000));
  upstreamPort = await listen(
    http.createServer((req, res) => (req.url === '/c.bin' ? res.end(body) : ((res.statusCode = 404), res.end()))),
  );
  trust = makeTrust(join(dir, 'keys'));
  const cacheDir = join(dir, 'cache');
  await (await openStore({ cacheDir, write: true })).close();
  const config: AirlockConfig = {
    configFile: null, cacheDir, trust: trust.rootJsonPath, proxy: null, caFile: null, insecureRegistries: [], parallel: 2,
    acceptExpiredUntil: null, listen: '127.0.0.1:0', adminToken: 'tok', tls: null, passthrough: false, json: true,
    minRate: 0, rateWindowMs: 60_000,
  } as AirlockConfig;
  store = await openStore({ cacheDir, write: false });
  const logger = pino({ level: 'silent' });
  const jobs = inProcessStager(config, logger);
  const srv = createServer(config, { store, logger, stage: jobs.starter, catalogTtlMs: 0, defaultMetrics: true, storeFiguresMaxAgeMs: 0 });
  port = await listen(http.createServer(srv.callback()));
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await store?.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('/metrics', () => {
  it('promtool check metrics accepts the whole page, Node.js process metrics included', async () => {
    await raw(port, '/healthz');
    const text = (await raw(port, '/metrics')).body.toString();
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_active_handles{');
    expect(text).not.toMatch(/^nodejs_active_\w+_total/m);
    const r = await promtool(text);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });

  it('promtool would refuse prom-client\'s own defaults (the check is real)', async () => {
    const { collectDefaultMetrics, Registry } = await import('prom-client');
    const reg = new Registry();
    collectDefaultMetrics({ register: reg });
    const r = await promtool(await reg.metrics());
    expect(r.out).toMatch(/nodejs_active_handles_total/);
  });

  it('store gauges: bytes, blobs, free disk, ready per release; staging counters by files, bytes and failure code', async () => {
    const before = (await raw(port, '/metrics')).body.toString();
    expect(sample(before, 'airlock_store_blobs')).toBe(0);
    expect(sample(before, 'airlock_store_bytes')).toBe(0);
    expect(sample(before, 'airlock_disk_free_bytes')).toBeGreaterThan(0);
    expect(sample(before, 'airlock_stage_files_total')).toBe(0);

    const sha = createHash('sha256').update(body).digest('hex');
    const good = signRelease(payloadOf('4.0.0', 1, [{ path: 'c.bin', kind: 'file', sha256: sha, size: body.length, urls: [`http://127.0.0.1:${upstreamPort}/c.bin`] }]), trust);
    expect(await stageAndWait(good)).toMatchObject({ ok: true });
    const missing = signRelease(
      payloadOf('4.0.1', 2, [
        { path: 'c.bin', kind: 'file', sha256: sha, size: body.length, urls: [`http://127.0.0.1:${upstreamPort}/c.bin`] },
        { path: 'gone.bin', kind: 'file', sha256: 'a'.repeat(64), size: 10, urls: [`http://127.0.0.1:${upstreamPort}/gone.bin`] },
      ]),
      trust,
    );
    const failed = await stageAndWait(missing);
    expect(failed.ok).toBe(false);
    const code = failed.error.code as string;
    expect(await stageAndWait(Buffer.from('{"not":"an envelope"}'))).toMatchObject({ ok: false, error: { code: 'EMANIFEST' } });

    // the store's figures are answered as last measured while a refresh runs behind: the next scrape sees it
    await raw(port, '/metrics');
    await new Promise((r) => setTimeout(r, 200));
    const text = (await raw(port, '/metrics')).body.toString();
    expect(sample(text, 'airlock_store_blobs')).toBe(1);
    expect(sample(text, 'airlock_store_bytes')).toBe(body.length);
    expect(sample(text, 'airlock_release_ready{release="4.0.0"}')).toBe(1);
    expect(sample(text, 'airlock_release_ready{release="4.0.1"}')).toBe(0);
    expect(sample(text, 'airlock_stage_files_total')).toBe(1);
    expect(sample(text, 'airlock_stage_bytes_total')).toBe(body.length);
    expect(sample(text, `airlock_stage_failures_total{code="${code}"}`)).toBe(1);
    expect(sample(text, 'airlock_stage_failures_total{code="EMANIFEST"}')).toBe(1);
    // counters do not count twice across scrapes
    const again = (await raw(port, '/metrics')).body.toString();
    expect(sample(again, 'airlock_stage_files_total')).toBe(1);
    expect(sample(again, 'airlock_stage_failures_total{code="EMANIFEST"}')).toBe(1);
    const r = await promtool(again);
    expect(r.out).toBe('');
  });

  it('the store walk is cached: a scrape within maxAge does not walk again', async () => {
    let walks = 0;
    const metrics = createMetrics();
    const { storeFigures } = await import('../../../server/http/store-figures.js');
    let now = 0;
    const fakeStore = {
      cacheDir: tmpdir(),
      backend: { async *list() { walks++; yield 'a'.repeat(64); } },
      stat: async () => ({ size: 5 }),
      status: async () => ({ ready: true }),
    } as unknown as Store;
    const catalog = { get: async () => ({ releases: new Map([['1.0', {}]]) }), invalidate() {} } as never;
    metrics.watchStore(storeFigures(fakeStore, catalog, { maxAgeMs: 30_000, clock: () => now }));
    await metrics.registry.metrics();
    await metrics.registry.metrics();
    expect(walks).toBe(1);
    now = 31_000;
    const stale = await metrics.registry.metrics(); // answers the old figures at once, refreshes behind
    expect(stale).toMatch(/^airlock_store_bytes 5$/m);
    await new Promise((r) => setTimeout(r, 10));
    expect(walks).toBe(2);
  });
});
