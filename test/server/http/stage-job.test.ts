/** POST /stage runs the real stageRelease in-process, from a real (loopback) upstream. */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { ReleaseManifest } from '../../../manifests/index.js';
import { openStore } from '../../../storage/index.js';
import type { AirlockConfig } from '../../../server/config.js';
import { createServer, inProcessStager } from '../../../server/http/index.js';
import { makeTrust, signRelease } from '../../../scripts/world/keys.js';
import { json, raw } from './client.js';

const dirs: string[] = [];
const servers: http.Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const listen = async (s: http.Server): Promise<number> => {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as net.AddressInfo).port;
};

describe('POST /stage', () => {
  it('stages a signed release from upstream, then serves it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-stagejob-'));
    dirs.push(dir);
    const body = Buffer.from('component bytes\n'.repeat(1000));
    const upstreamPort = await listen(http.createServer((req, res) => (req.url === '/c.bin' ? res.end(body) : ((res.statusCode = 404), res.end()))));
    const trust = makeTrust(join(dir, 'keys'));
    const now = Date.now();
    const payload: ReleaseManifest = {
      type: 'airlock-release', spec: 1, product: 'stackato', release: '4.0.0', serial: 1,
      issued: new Date(now - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      expires: new Date(now + 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      artifacts: [{ path: 'c.bin', kind: 'file', sha256: createHash('sha256').update(body).digest('hex'), size: body.length, urls: [`http://127.0.0.1:${upstreamPort}/c.bin`] }],
    };
    const envelope = signRelease(payload, trust);
    const cacheDir = join(dir, 'cache');
    await (await openStore({ cacheDir, write: true })).close();
    const config: AirlockConfig = {
      configFile: null, cacheDir, trust: trust.rootJsonPath, proxy: null, caFile: null, insecureRegistries: [], parallel: 2,
      acceptExpiredUntil: null, listen: '127.0.0.1:0', adminToken: 'tok', tls: null, passthrough: false, json: true,
    };
    const store = await openStore({ cacheDir, write: false });
    const logger = pino({ level: 'silent' });
    const jobs = inProcessStager(config, logger);
    const srv = createServer(config, { store, logger, stage: jobs.starter, catalogTtlMs: 0 });
    const port = await listen(http.createServer(srv.callback()));
    const r = await raw(port, '/stage', {
      method: 'POST', headers: { Authorization: 'Bearer tok', 'Content-Type': 'application/json' },
      body: JSON.stringify({ envelope: JSON.parse(envelope.toString()) }),
    });
    expect(r.status, r.body.toString()).toBe(202);
    let status: any = null;
    for (let i = 0; i < 100; i++) {
      status = json(await raw(port, '/stage'));
      if (status.last) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(status.last).toMatchObject({ ok: true, release: '4.0.0' });
    const f = await raw(port, '/files/4.0.0/c.bin');
    expect(f.status).toBe(200);
    expect(f.body.equals(body)).toBe(true);
    expect((await raw(port, '/releases/4.0.0/manifest')).body.length).toBeGreaterThan(0);
    await store.close();
  });
});
