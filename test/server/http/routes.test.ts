/**
 * Routing on @koa/router: 405 with Allow for a known path, 404 otherwise,
 * HEAD wherever GET is, exact matching, one decode of every parameter, route
 * names in metrics.
 */
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../../server/http/index.js';
import { json, raw } from './client.js';
import { makeFixture, type Fixture } from './fixture.js';

let fx: Fixture;
let server: http.Server;
let port: number;

beforeAll(async () => {
  fx = await makeFixture();
  server = http.createServer(createServer({ adminToken: 't', passthrough: false }, { store: fx.store }).callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await fx?.store.close();
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

describe('methods', () => {
  it('a known path with another method is 405 with Allow and the usual body; any method, OPTIONS too', async () => {
    for (const method of ['DELETE', 'PUT', 'OPTIONS', 'PROPFIND']) {
      const r = await raw(port, '/blobs/sha256/x', { method });
      expect(r.status, method).toBe(405);
      expect(r.headers.allow).toBe('GET, HEAD');
      if (method !== 'OPTIONS') expect(json(r)).toEqual({ error: { code: 'EUSAGE', message: `${method} is not allowed on /blobs/sha256/x` } });
    }
    expect((await raw(port, '/stage', { method: 'PUT' })).headers.allow).toBe('GET, HEAD, POST');
    const v2 = await raw(port, '/v2/demo/app/blobs/sha256:x', { method: 'DELETE' });
    expect(v2.status).toBe(405);
    expect(v2.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(json(v2).errors[0].code).toBe('UNSUPPORTED');
  });

  it('HEAD wherever GET is, /metrics included', async () => {
    for (const path of ['/healthz', '/metrics', '/releases', '/releases/3.6.2/manifest', '/v2/', '/apt/3.6.2/', '/stage']) {
      const r = await raw(port, path, { method: 'HEAD' });
      expect(r.status, path).toBe(200);
      expect(r.body.length).toBe(0);
    }
  });

  it('an unknown path is 404 in the right shape; matching is exact (case, trailing slash)', async () => {
    const r = await raw(port, '/nope/x');
    expect(r.status).toBe(404);
    expect(json(r)).toEqual({ error: { code: 'ENOTFOUND', message: 'no such endpoint: /nope/x' } });
    for (const p of ['/HEALTHZ', '/healthz/', '/Releases', '/blobs/sha256/', '/files/3.6.2', '/releases/3.6.2/manifest/']) {
      expect((await raw(port, p)).status, p).toBe(404);
    }
    expect((await raw(port, '/releases/')).status).toBe(200);
    const v2 = await raw(port, '/v2/demo/app/nothing');
    expect(v2.status).toBe(404);
    expect(json(v2).errors[0].code).toBe('NAME_UNKNOWN');
  });
});

describe('parameters are decoded once, by path-params', () => {
  it('an encoded name is served; a doubly encoded one is not decoded twice; %2F and malformed encoding are EPATH', async () => {
    expect((await raw(port, '/releases/3%2E6%2E2/manifest')).status).toBe(200);
    expect((await raw(port, '/files/3.6.2/components/%61pp.tgz')).status).toBe(200);
    // one decode gives the name "components%2Fapp.tgz", which is no artifact
    const twice = await raw(port, '/files/3.6.2/components%252Fapp.tgz');
    expect(twice.status).toBe(404);
    expect(json(twice).error.message).toContain('no artifact at path components%2Fapp.tgz');
    expect((await raw(port, '/files/3.6.2/components%2Fapp.tgz')).status).toBe(400);
    const bad = await raw(port, '/releases/%E0%A4%A/manifest');
    expect(bad.status).toBe(400);
    expect(json(bad).error.code).toBe('EPATH');
    expect(json(await raw(port, '/v2/demo/app/manifests/%E0%A4%A')).errors[0].code).toBe('NAME_INVALID');
  });

  it('an OCI name of several segments reaches the registry routes', async () => {
    expect((await raw(port, '/v2/demo/app/manifests/1.0', { method: 'HEAD' })).status).toBe(200);
    expect((await raw(port, '/v2/demo/app/extra/manifests/1.0')).status).toBe(404);
    expect(json(await raw(port, '/v2/demo%2fapp/tags/list'))).toEqual({ name: 'demo/app', tags: ['1.0'] });
  });
});

describe('route names', () => {
  it('metrics and the log name the route, never the raw path', async () => {
    await raw(port, '/files/3.6.2/components/app.tgz');
    await raw(port, '/apt/3.6.2/./Packages');
    await raw(port, '/v2/demo/app/tags/list');
    await raw(port, '/nope');
    const text = (await raw(port, '/metrics')).body.toString();
    expect(text).toMatch(/airlock_http_requests_total\{route="files",method="GET",status="200"\} [1-9]/);
    expect(text).toMatch(/airlock_http_requests_total\{route="apt",method="GET",status="200"\} [1-9]/);
    expect(text).toMatch(/airlock_http_requests_total\{route="v2-tags",method="GET",status="200"\} [1-9]/);
    expect(text).toMatch(/airlock_http_requests_total\{route="other",method="GET",status="404"\} [1-9]/);
  });
});
