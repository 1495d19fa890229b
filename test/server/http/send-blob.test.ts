/**
 * Blob answers from a backend without descriptors (no `open`, as an object
 * store would be): served through its `read` stream with the same headers,
 * ranges and conditionals as files.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from '../../../server/http/index.js';
import { fsBackend, openStore, type BlobBackend, type Store } from '../../../storage/index.js';
import { sha256 as sha } from '../../support/release.js';
import { raw } from './client.js';

let dir: string;
let store: Store;
let server: http.Server;
let port: number;
const body = randomBytes(300 * 1024);
const hex = sha(body);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-send-blob-'));
  const { open: _descriptors, ...streamOnly } = fsBackend(join(dir, 'cache'));
  store = await openStore({ cacheDir: join(dir, 'cache'), write: true, backend: streamOnly satisfies BlobBackend });
  await store.ingestStream({ sha256: hex, size: body.length }, Readable.from([body]));
  server = http.createServer(createServer({ adminToken: null, passthrough: false }, { store }).callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a backend without open', () => {
  it('GET whole, HEAD, one range, 304, 416 and 404 as for files', async () => {
    const whole = await raw(port, `/blobs/sha256/${hex}`);
    expect(whole.status).toBe(200);
    expect(whole.body.equals(body)).toBe(true);
    expect(whole.headers['content-length']).toBe(String(body.length));
    expect(whole.headers.etag).toBe(`"sha256:${hex}"`);
    const head = await raw(port, `/blobs/sha256/${hex}`, { method: 'HEAD' });
    expect(head.headers['content-length']).toBe(String(body.length));
    expect(head.body.length).toBe(0);
    const part = await raw(port, `/blobs/sha256/${hex}`, { headers: { Range: 'bytes=1000-2999' } });
    expect(part.status).toBe(206);
    expect(part.body.equals(body.subarray(1000, 3000))).toBe(true);
    expect((await raw(port, `/blobs/sha256/${hex}`, { headers: { 'If-None-Match': `"sha256:${hex}"` } })).status).toBe(304);
    expect((await raw(port, `/blobs/sha256/${hex}`, { headers: { Range: `bytes=${body.length}-` } })).status).toBe(416);
    expect((await raw(port, `/blobs/sha256/${'c'.repeat(64)}`)).status).toBe(404);
    // through koa too (a query string skips the lean path)
    const viaKoa = await raw(port, `/blobs/sha256/${hex}?x=1`, { headers: { Range: 'bytes=-10' } });
    expect(viaKoa.body.equals(body.subarray(body.length - 10))).toBe(true);
  });
});
