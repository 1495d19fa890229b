/**
 * Proxy mode and the cache's own URLs: a node whose http_proxy is the cache
 * asks `GET http://cache:7070/…` in absolute form; the cache answers its own
 * routes (/files, /blobs, /apt, /releases…) instead of refusing them as
 * non-artifact URLs. Driven with curl -x, as a node's tools would.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AirlockApp } from '../../../../server/http/index.js';
import { sha256 } from '../../../support/release.js';
import { json, raw } from '../client.js';
import { FILE_URL, makeFixture, type Fixture } from '../fixture.js';

let fx: Fixture;
let srv: AirlockApp;
let server: http.Server;
let port: number;

beforeAll(async () => {
  fx = await makeFixture({ bigSize: 1024 });
  srv = createServer({ adminToken: null, passthrough: false }, { store: fx.store });
  server = http.createServer(srv.callback());
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await fx?.store.close();
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

function curl(args: string[]): Promise<{ code: number; stdout: Buffer }> {
  return new Promise((done) =>
    execFile('curl', ['-sS', '--noproxy', '', ...args], { encoding: 'buffer', timeout: 30_000, env: { PATH: process.env.PATH } }, (e, stdout) =>
      done({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout }),
    ),
  );
}

describe("proxy mode answers the cache's own URLs", () => {
  it('absolute-form requests naming this server by address or name reach its routes', async () => {
    const app = fx.manifest.artifacts.find((a) => a.path === 'components/app.tgz')!;
    for (const host of ['127.0.0.1', 'localhost', hostname()]) {
      const base = `http://${host}:${port}`;
      const rels = await raw(port, `${base}/releases`, { headers: { Host: `${host}:${port}` } });
      expect(rels.status, host).toBe(200);
      expect(json(rels)[0].release).toBe('3.6.2');
      const file = await raw(port, `${base}/files/3.6.2/components/app.tgz`, { headers: { Host: `${host}:${port}` } });
      expect(file.status).toBe(200);
      expect(sha256(file.body)).toBe(app.sha256);
      const blob = await raw(port, `${base}/blobs/sha256/${app.sha256}`, { headers: { Host: `${host}:${port}` } });
      expect(blob.status).toBe(200);
      expect(blob.headers.etag).toBe(`"sha256:${app.sha256}"`);
      const apt = await raw(port, `${base}/apt/3.6.2/`, { headers: { Host: `${host}:${port}` } });
      expect(apt.status).not.toBe(403);
    }
    // the route name in metrics is the route's, not "proxy"
    const text = (await raw(port, '/metrics')).body.toString();
    expect(text).toMatch(/airlock_http_requests_total\{route="files",method="GET",status="200"\} [1-9]/);
  });

  it('through curl -x, as a node with http_proxy set to the cache', async () => {
    const bytes = readFileSync(fx.local.get('components/app.tgz')!);
    const own = await curl(['-x', `http://127.0.0.1:${port}`, `http://localhost:${port}/files/3.6.2/components/app.tgz`]);
    expect(own.code).toBe(0);
    expect(own.stdout.equals(bytes)).toBe(true);
    // a staged upstream URL is still answered, anything else still refused
    const staged = await curl(['-x', `http://127.0.0.1:${port}`, FILE_URL]);
    expect(staged.stdout.equals(bytes)).toBe(true);
    const other = await curl(['-x', `http://127.0.0.1:${port}`, '-o', '/dev/null', '-w', '%{http_code}', 'http://files.upstream.test/other.tgz']);
    expect(other.stdout.toString()).toBe('403');
  });

  it('another port or another host is not this server: refused as before', async () => {
    const otherPort = await raw(port, `http://127.0.0.1:${port === 65535 ? port - 1 : port + 1}/releases`);
    expect(otherPort.status).toBe(403);
    const otherHost = await raw(port, `http://198.51.100.7:${port}/releases`);
    expect(otherHost.status).toBe(403);
    expect(otherHost.body.toString()).toMatch(/not an artifact URL of a staged release/);
  });
});
