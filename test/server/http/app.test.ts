import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AirlockApp } from '../../../server/http/index.js';
import { BIG_URL, FILE_URL, makeFixture, type Fixture } from './fixture.js';
import { json, raw } from './client.js';
import { sha256 as sha } from '../../support/release.js';

let fx: Fixture;
let srv: AirlockApp;
let server: http.Server;
let port: number;
const TOKEN = 'test-admin-token';

beforeAll(async () => {
  fx = await makeFixture();
  srv = createServer({ adminToken: TOKEN, passthrough: false }, { store: fx.store });
  server = http.createServer(srv.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await fx?.store.close();
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

describe('service endpoints', () => {
  it('healthz, releases, manifest byte for byte', async () => {
    expect((await raw(port, '/healthz')).status).toBe(200);
    const rels = json(await raw(port, '/releases'));
    expect(rels).toHaveLength(1);
    expect(rels[0]).toMatchObject({ release: '3.6.2', serial: 17, ready: true });
    expect(rels[0].files.missing).toBe(0);
    const m = await raw(port, '/releases/3.6.2/manifest');
    expect(m.status).toBe(200);
    expect(m.body.equals(fx.verified.envelope)).toBe(true);
    const missing = await raw(port, '/releases/9.9.9/manifest');
    expect(missing.status).toBe(404);
    expect(json(missing).error.code).toBe('ENOTFOUND');
  });

  it('metrics count requests, bytes, hits and misses', async () => {
    await raw(port, `/blobs/sha256/${'0'.repeat(64)}`);
    const text = (await raw(port, '/metrics')).body.toString();
    expect(text).toMatch(/airlock_http_requests_total\{route="healthz",method="GET",status="200"\} \d+/);
    expect(text).toMatch(/airlock_cache_misses_total\{route="blobs"\} [1-9]/);
    expect(text).toMatch(/airlock_http_response_bytes_total\{route="manifest"\} [1-9]/);
    expect(text).toContain('airlock_http_request_duration_seconds_bucket');
    expect(text).toContain('airlock_http_requests_in_flight');
  });
});

describe('blobs and files', () => {
  it('GET, HEAD, ETag, 304, immutable caching', async () => {
    const path = fx.local.get('components/app.tgz')!;
    const bytes = readFileSync(path);
    const hex = sha(bytes);
    const r = await raw(port, `/blobs/sha256/${hex}`);
    expect(r.status).toBe(200);
    expect(r.body.equals(bytes)).toBe(true);
    expect(r.headers['content-length']).toBe(String(bytes.length));
    expect(r.headers.etag).toBe(`"sha256:${hex}"`);
    expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const h = await raw(port, `/blobs/sha256/${hex}`, { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.headers['content-length']).toBe(String(bytes.length));
    expect(h.body.length).toBe(0);
    const c = await raw(port, `/blobs/sha256/${hex}`, { headers: { 'If-None-Match': `"sha256:${hex}"` } });
    expect(c.status).toBe(304);
    expect(c.body.length).toBe(0);
    const f = await raw(port, '/files/3.6.2/components/app.tgz');
    expect(f.status).toBe(200);
    expect(f.headers['content-type']).toBe('application/gzip');
    expect(f.body.equals(bytes)).toBe(true);
    const d = await raw(port, `/files/3.6.2/${[...fx.local.keys()].find((p) => p.includes('hello_'))!}`);
    expect(d.headers['content-type']).toBe('application/vnd.debian.binary-package');
  });

  it('single Range → 206, unsatisfiable → 416, multi-range → 200 whole, malformed → ignored', async () => {
    const bytes = readFileSync(fx.local.get('components/big.bin')!);
    const url = '/files/3.6.2/components/big.bin';
    const r = await raw(port, url, { headers: { Range: 'bytes=100-199' } });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 100-199/${bytes.length}`);
    expect(r.body.equals(bytes.subarray(100, 200))).toBe(true);
    const tail = await raw(port, url, { headers: { Range: 'bytes=-10' } });
    expect(tail.body.equals(bytes.subarray(bytes.length - 10))).toBe(true);
    const bad = await raw(port, url, { headers: { Range: `bytes=${bytes.length + 5}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${bytes.length}`);
    const multi = await raw(port, url, { method: 'HEAD', headers: { Range: 'bytes=0-1,5-9' } });
    expect(multi.status).toBe(200);
    const junk = await raw(port, url, { method: 'HEAD', headers: { Range: 'bytes=zz-' + '9'.repeat(400) } });
    expect(junk.status).toBe(200);
    const huge = await raw(port, url, { method: 'HEAD', headers: { Range: 'bytes=99999999999999999999-' } });
    expect(huge.status).toBe(416);
    const ifRange = await raw(port, url, { method: 'HEAD', headers: { Range: 'bytes=0-1', 'If-Range': '"other"' } });
    expect(ifRange.status).toBe(200);
  });

  it('404 for unknown blobs, releases and paths; 400 for malformed digests', async () => {
    expect((await raw(port, `/blobs/sha256/${'a'.repeat(64)}`)).status).toBe(404);
    expect((await raw(port, '/blobs/sha256/abc')).status).toBe(400);
    expect((await raw(port, `/blobs/sha256/${'A'.repeat(64)}`)).status).toBe(400);
    expect((await raw(port, '/files/3.6.2/components/nope.tgz')).status).toBe(404);
    expect((await raw(port, '/files/0.0.0/components/app.tgz')).status).toBe(404);
    expect((await raw(port, '/nope')).status).toBe(404);
    expect((await raw(port, '/blobs/sha256/x', { method: 'DELETE' })).status).toBe(405);
  });

  it('refuses traversal in every path parameter, encoded too, and stays healthy', async () => {
    const attempts = [
      '/files/3.6.2/../../../etc/passwd',
      '/files/3.6.2/components/%2e%2e/%2e%2e/etc/passwd',
      '/files/3.6.2/components%2f..%2f..%2fetc%2fpasswd',
      '/files/..%2f..%2fetc/passwd',
      '/files/%2e%2e/passwd',
      '/files/3.6.2/components/app.tgz%00.txt',
      '/files/3.6.2/%E0%A4%A',
      '/files/3.6.2//etc/passwd',
      '/files/3.6.2/components\\..\\..\\etc\\passwd',
      '/blobs/sha256/..%2f..%2f..%2fetc%2fpasswd',
      '/blobs/sha256/%2e%2e',
      '/releases/..%2f..%2fetc/manifest',
      '/apt/..%2f..%2f/Packages',
      '/apt/3.6.2/..%2f..%2fetc%2fpasswd',
      '/apt/3.6.2/../../etc/passwd',
      '/v2/demo/app/blobs/sha256:..%2f..%2fetc',
      '/v2/../../etc/passwd/manifests/1.0',
      '/v2/demo%2f..%2f..%2fetc/tags/list',
      '/v2/demo/app/manifests/..%2f..%2fx',
    ];
    for (const p of attempts) {
      const r = await raw(port, p);
      expect([400, 404, 405], `${p} → ${r.status}`).toContain(r.status);
      expect(r.body.toString()).not.toContain('root:x:0:0');
      expect(r.body.toString()).not.toMatch(/at .*\.ts:\d+/);
    }
    expect((await raw(port, '/healthz')).status).toBe(200);
  });
});

describe('OCI distribution API', () => {
  it('/v2/ check, tags/list, manifests by tag and digest, blobs', async () => {
    const v2 = await raw(port, '/v2/');
    expect(v2.status).toBe(200);
    expect(v2.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(json(await raw(port, '/v2/demo/app/tags/list'))).toEqual({ name: 'demo/app', tags: ['1.0'] });
    const byTag = await raw(port, '/v2/demo/app/manifests/1.0');
    expect(byTag.status).toBe(200);
    expect(byTag.headers['content-type']).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(byTag.headers['docker-content-digest']).toBe(`sha256:${fx.imageDigest}`);
    expect(sha(byTag.body)).toBe(fx.imageDigest);
    const head = await raw(port, `/v2/demo/app/manifests/sha256:${fx.imageDigest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(byTag.body.length));
    const m = json(byTag);
    const layer = m.layers[0].digest as string;
    const blob = await raw(port, `/v2/demo/app/blobs/${layer}`);
    expect(blob.status).toBe(200);
    expect(`sha256:${sha(blob.body)}`).toBe(layer);
  });

  it('OCI error JSON for unknown names, tags, blobs; read-only', async () => {
    const name = await raw(port, '/v2/nope/app/manifests/1.0');
    expect(name.status).toBe(404);
    expect(json(name).errors[0].code).toBe('NAME_UNKNOWN');
    const tag = await raw(port, '/v2/demo/app/manifests/9.9');
    expect(json(tag).errors[0].code).toBe('MANIFEST_UNKNOWN');
    const blob = await raw(port, `/v2/demo/app/blobs/sha256:${'b'.repeat(64)}`);
    expect(blob.status).toBe(404);
    expect(json(blob).errors[0].code).toBe('BLOB_UNKNOWN');
    // a blob the store holds but the image does not list is not reachable through this repository
    const other = fx.manifest.artifacts.find((a) => a.path === 'components/app.tgz')!.sha256;
    expect(json(await raw(port, `/v2/demo/app/blobs/sha256:${other}`)).errors[0].code).toBe('BLOB_UNKNOWN');
    const bad = await raw(port, '/v2/demo/app/blobs/sha256:xyz');
    expect(bad.status).toBe(400);
    expect(json(bad).errors[0].code).toBe('DIGEST_INVALID');
    const put = await raw(port, '/v2/demo/app/manifests/1.0', { method: 'PUT', body: '{}' });
    expect(put.status).toBe(405);
    expect(json(put).errors[0].code).toBe('UNSUPPORTED');
  });
});

describe('flat apt repository', () => {
  it('Packages from the debs themselves, Packages.gz, Release with sizes and hashes, signed as InRelease and Release.gpg', async () => {
    const pk = await raw(port, '/apt/3.6.2/./Packages');
    expect(pk.status).toBe(200);
    const text = pk.body.toString();
    expect(text).toMatch(/^Package: hello$/m);
    expect(text).toMatch(/^Maintainer: /m); // a control field no manifest carries
    const hello = fx.manifest.artifacts.find((a) => a.kind === 'deb' && a.package === 'hello')!;
    expect(text).toContain(`Filename: ${hello.path}\nSize: ${hello.size}\nSHA256: ${hello.sha256}\n`);
    const gz = await raw(port, '/apt/3.6.2/./Packages.gz');
    expect(gunzipSync(gz.body).equals(pk.body)).toBe(true);
    const rel = (await raw(port, '/apt/3.6.2/./Release')).body.toString();
    expect(rel).toContain(` ${sha(pk.body)} ${String(pk.body.length).padStart(8)} Packages\n`);
    expect(rel).toContain(` ${sha(gz.body)} ${String(gz.body.length).padStart(8)} Packages.gz\n`);
    const inRelease = (await raw(port, '/apt/3.6.2/./InRelease')).body.toString();
    expect(inRelease).toMatch(/^-----BEGIN PGP SIGNED MESSAGE-----\n/);
    expect(inRelease).toContain(rel);
    expect((await raw(port, '/apt/3.6.2/./Release.gpg')).body.toString()).toMatch(/^-----BEGIN PGP SIGNATURE-----/);
    expect((await raw(port, '/apt/3.6.2/./Packages.xz')).status).toBe(404);
    const deb = await raw(port, `/apt/3.6.2/./${hello.path}`);
    expect(sha(deb.body)).toBe(hello.sha256);
    expect((await raw(port, '/apt/3.6.2/components/app.tgz')).status).toBe(404);
  });
});

describe('proxy mode', () => {
  it('answers a staged URL from the store; refuses anything else; refuses CONNECT', async () => {
    const bytes = readFileSync(fx.local.get('components/app.tgz')!);
    const r = await raw(port, FILE_URL, { headers: { Host: 'files.upstream.test' } });
    expect(r.status).toBe(200);
    expect(r.body.equals(bytes)).toBe(true);
    const ranged = await raw(port, BIG_URL, { headers: { Host: 'files.upstream.test', Range: 'bytes=0-9' } });
    expect(ranged.status).toBe(206);
    const no = await raw(port, 'http://files.upstream.test/other.tgz', { headers: { Host: 'files.upstream.test' } });
    expect(no.status).toBe(403);
    expect(no.body.toString()).toMatch(/not an artifact URL of a staged release/);
  });
});

describe('writes', () => {
  it('POST /stage needs the admin token; without in-process staging it is 501', async () => {
    expect((await raw(port, '/stage', { method: 'POST', body: '{}' })).status).toBe(401);
    const wrong = await raw(port, '/stage', { method: 'POST', body: '{}', headers: { Authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const ok = await raw(port, '/stage', { method: 'POST', body: '{"envelope":"http://x/e.json"}', headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(501);
  });

  it('POST /stage hands the envelope to the stager', async () => {
    const seen: Array<{ url?: string; inline?: Buffer }> = [];
    const s = createServer(
      { adminToken: TOKEN, passthrough: false },
      { store: fx.store, stage: async (e) => (seen.push(e), { release: 'x' }) },
    );
    const h = http.createServer(s.callback());
    await new Promise<void>((r) => h.listen(0, '127.0.0.1', r));
    const p = (h.address() as net.AddressInfo).port;
    const r = await raw(p, '/stage', { method: 'POST', body: '{"envelope":"http://x/e.json"}', headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(r.status).toBe(202);
    expect(seen[0]!.url).toBe('http://x/e.json');
    // an inline envelope is handed over byte for byte, spacing and key order as sent
    const envelope = '{ "signatures": [ {"sig": "c2ln", "keyid": "k"} ],\n  "payloadType": "application/vnd.airlock.release+json", "payload": "e30=" }';
    const inline = await raw(p, '/stage', { method: 'POST', body: `{"envelope":  ${envelope}  }\n`, headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(inline.status).toBe(202);
    expect(seen[1]!.inline!.toString('utf8')).toBe(envelope);
    const extra = await raw(p, '/stage', { method: 'POST', body: `{"envelope": ${envelope}, "x": 1}`, headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(extra.status).toBe(400);
    h.closeAllConnections();
    await new Promise((r2) => h.close(r2));
  });
});
