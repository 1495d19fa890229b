import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cacheClient } from '../../client/remote.js';
import type { ReleaseSummary } from '../../common/cache-api.js';
import { createServer } from '../../server/http/index.js';
import { openStore } from '../../storage/index.js';
import { startFaultUpstream, type FaultUpstream } from '../support/fault-upstream.js';
import { sha256, unsignedRelease } from '../support/release.js';

const tally = (total: number, present: number) => ({ total, present, missing: total - present });
const entry: ReleaseSummary = { release: '1.0', product: 'p', serial: 1, digest: 'd'.repeat(64), ready: true, files: tally(1, 1), bytes: tally(5, 5) };

let up: FaultUpstream;
beforeEach(async () => {
  up = await startFaultUpstream();
});
afterEach(async () => {
  await up.close();
});

describe('cacheClient against a cache that trickles', () => {
  it('the release list trickled a byte at a time is EUPSTREAM "too slow" at the deadline, not never', async () => {
    up.files.set('/releases', { body: Buffer.from(JSON.stringify([entry])), fault: { kind: 'trickle', at: 2, every: 100 } });
    const cache = cacheClient(up.url, { stallTimeoutMs: 5000, answerTimeoutMs: 700 });
    try {
      const t0 = Date.now();
      await expect(cache.releases()).rejects.toMatchObject({ code: 'EUPSTREAM', details: { cause: 'too slow' } });
      expect(Date.now() - t0).toBeLessThan(4000);
    } finally {
      cache.close();
    }
  }, 15_000);

  it('an envelope trickled the same way, too', async () => {
    up.files.set('/releases/1.0/manifest', { body: Buffer.alloc(500, 0x20), fault: { kind: 'trickle', at: 1, every: 100 } });
    const cache = cacheClient(up.url, { stallTimeoutMs: 5000, answerTimeoutMs: 700 });
    try {
      await expect(cache.manifest('1.0')).rejects.toMatchObject({ code: 'EUPSTREAM', details: { cause: 'too slow' } });
    } finally {
      cache.close();
    }
  }, 15_000);

  it('a prompt answer is read as before', async () => {
    up.files.set('/releases', { body: Buffer.from(JSON.stringify([entry])) });
    const cache = cacheClient(up.url, { answerTimeoutMs: 700 });
    try {
      expect(await cache.releases()).toEqual([entry]);
    } finally {
      cache.close();
    }
  });
});

describe('cacheClient reads /releases as the server sends it, nothing else', () => {
  it("the real server's answer round-trips: ready and missing releases, counts and digests", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-remote-'));
    const store = await openStore({ cacheDir: join(dir, 'cache'), write: true });
    const server = http.createServer();
    try {
      const body = Buffer.from('hello');
      const file = { path: 'a.txt', kind: 'file' as const, sha256: sha256(body), size: body.length, urls: ['http://up.example/a.txt'] };
      const absent = { ...file, path: 'b.txt', sha256: sha256('absent'), size: 6 };
      await store.ingestStream({ sha256: file.sha256, size: file.size }, Readable.from([body]));
      const ready = unsignedRelease({ release: '1.0', serial: 3, artifacts: [file] });
      const partial = unsignedRelease({ release: '1.1', serial: 4, artifacts: [file, absent] });
      await store.putRelease(ready);
      await store.putRelease(partial);
      server.on('request', createServer({ adminToken: null, passthrough: false }, { store }).callback());
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const cache = cacheClient(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
      try {
        const list = await cache.releases();
        expect(list.sort((a, b) => a.serial - b.serial)).toEqual([
          { release: '1.0', product: 'stackato', serial: 3, digest: ready.digest, ready: true, files: tally(1, 1), bytes: tally(5, 5) },
          { release: '1.1', product: 'stackato', serial: 4, digest: partial.digest, ready: false, files: tally(2, 1), bytes: tally(11, 5) },
        ]);
      } finally {
        cache.close();
      }
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('another shape is EUPSTREAM: a wrapped list, an entry missing a field, a serial that is not a count', async () => {
    const bodies = [{ releases: [entry] }, [{ ...entry, digest: undefined }], [{ ...entry, serial: '1' }], [{ ...entry, files: { total: 1 } }]];
    for (const b of bodies) {
      up.files.set('/releases', { body: Buffer.from(JSON.stringify(b)) });
      const cache = cacheClient(up.url, { answerTimeoutMs: 700 });
      try {
        await expect(cache.releases(), JSON.stringify(b)).rejects.toMatchObject({ code: 'EUPSTREAM' });
      } finally {
        cache.close();
      }
    }
  });
});

describe('a cache served over TLS', () => {
  it('cacheClient trusts --ca-file / ca_file; without it the failure says to pass --ca-file (EUSAGE, not a network error)', async () => {
    const { execFileSync } = await import('node:child_process');
    const { readFileSync, writeFileSync } = await import('node:fs');
    const https = await import('node:https');
    const { loadNodeConfig } = await import('../../client/config.js');
    const dir = await mkdtemp(join(tmpdir(), 'airlock-cache-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.pem'),
    ], { stdio: 'ignore' });
    const server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'ca.pem')) }, (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify([entry]));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      const bare = cacheClient(base, { answerTimeoutMs: 5000 });
      await expect(bare.releases()).rejects.toMatchObject({ code: 'EUSAGE', message: expect.stringContaining('give its CA with --ca-file PEM') });
      bare.close();
      // the node config's ca_file (relative to the config file) reaches the cache client
      writeFileSync(join(dir, 'node.yml'), `cache: ${base}\nca_file: ca.pem\n`);
      const config = loadNodeConfig({ config: join(dir, 'node.yml') }, dir, null);
      expect(config.caFile).toBe(join(dir, 'ca.pem'));
      expect(loadNodeConfig({ caFile: 'other.pem' }, dir, null).caFile).toBe(join(dir, 'other.pem'));
      const trusted = cacheClient(config.caches[0]!, { answerTimeoutMs: 5000, caFile: config.caFile });
      expect(await trusted.releases()).toEqual([entry]);
      trusted.close();
    } finally {
      server.closeAllConnections();
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
