import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LookupFunction } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { createHttpClient, httpFetcher } from '../../../storage/fetch/http.js';
import { bypassesProxy, proxyFor } from '../../../storage/fetch/proxy.js';
import { isAirlockError } from '../../../manifests/errors.js';
import { startFaultUpstream, startTestProxy, type FaultUpstream, type TestProxy } from '../../support/fault-upstream.js';

async function drain(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A DNS that refuses everything: proves a name was never resolved here. */
function guardedLookup(asked: string[]): LookupFunction {
  return ((hostname: string, _opts: unknown, cb: (err: NodeJS.ErrnoException | null, addr?: string, fam?: number) => void) => {
    asked.push(hostname);
    const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    (typeof _opts === 'function' ? (_opts as typeof cb) : cb)(err);
  }) as unknown as LookupFunction;
}

const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251));

describe('proxy selection', () => {
  it.each([
    ['example.com', 'http://example.com/x', true],
    ['.example.com', 'http://a.example.com/x', true],
    ['example.com', 'http://a.example.com/x', true],
    ['example.com', 'http://badexample.com/x', false],
    ['*', 'http://anything/x', true],
    ['host:8080', 'http://host:8080/x', true],
    ['host:8080', 'http://host:9090/x', false],
    ['host:443', 'https://host/x', true],
    ['a, b ,c', 'http://b/x', true],
    ['127.0.0.1', 'http://127.0.0.1:5000/v2/', true],
    ['', 'http://a/x', false],
  ])('no_proxy=%j for %s → bypass %s', (noProxy, url, expected) => {
    expect(bypassesProxy(new URL(url), noProxy)).toBe(expected);
  });

  it('reads either case, --proxy wins, https uses https_proxy', () => {
    expect(proxyFor('http://u/x', { env: { HTTP_PROXY: 'http://p:1' } })?.href).toBe('http://p:1/');
    expect(proxyFor('http://u/x', { env: { http_proxy: 'p2:3128' } })?.href).toBe('http://p2:3128/');
    expect(proxyFor('https://u/x', { env: { http_proxy: 'http://p:1' } })).toBeNull();
    expect(proxyFor('https://u/x', { env: { https_proxy: 'http://p:2' } })?.href).toBe('http://p:2/');
    expect(proxyFor('http://u/x', { proxy: 'http://flag:9', env: { http_proxy: 'http://p:1' } })?.href).toBe('http://flag:9/');
    expect(proxyFor('http://u/x', { proxy: 'http://flag:9', env: { NO_PROXY: 'u' } })).toBeNull();
  });
});

describe('httpFetcher against the fault upstream', () => {
  let up: FaultUpstream;
  beforeEach(async () => {
    up = await startFaultUpstream();
  });
  afterEach(async () => {
    await up.close();
  });
  const noEnv = { env: {} };

  it('fetches a whole body and a Range from an offset', async () => {
    up.files.set('/f', { body: data });
    const f = httpFetcher({ ...noEnv });
    const whole = await f.fetch(`${up.url}/f`, { offset: 0, maxLength: data.length + 1 });
    expect((await drain(whole.stream)).equals(data)).toBe(true);
    const part = await f.fetch(`${up.url}/f`, { offset: 1000, maxLength: data.length + 1 });
    expect(part.offset).toBe(1000);
    expect(up.requests.at(-1)?.headers.range).toBe('bytes=1000-');
    expect((await drain(part.stream)).equals(data.subarray(1000))).toBe(true);
  });

  it('reports offset 0 when the upstream ignores Range', async () => {
    up.files.set('/f', { body: data, fault: { kind: 'norange' } });
    const r = await httpFetcher(noEnv).fetch(`${up.url}/f`, { offset: 5000, maxLength: data.length + 1 });
    expect(r.offset).toBe(0);
    expect((await drain(r.stream)).length).toBe(data.length);
  });

  it('a Range from the very end (partial already complete) is an empty body, not an error', async () => {
    up.files.set('/f', { body: data });
    const r = await httpFetcher(noEnv).fetch(`${up.url}/f`, { offset: data.length, maxLength: 1 });
    expect(r.offset).toBe(data.length);
    expect((await drain(r.stream)).length).toBe(0);
  });

  it('404 is ENOTFOUND, 503 is a retryable EUPSTREAM', async () => {
    const f = httpFetcher(noEnv);
    await expect(f.fetch(`${up.url}/nope`, { offset: 0, maxLength: 10 })).rejects.toMatchObject({ code: 'ENOTFOUND' });
    up.files.set('/f', { body: data, fault: { kind: 'status', status: 503 } });
    await expect(f.fetch(`${up.url}/f`, { offset: 0, maxLength: 10 })).rejects.toMatchObject({
      code: 'EUPSTREAM',
      details: { status: 503, retryable: true },
    });
    const ok = await f.fetch(`${up.url}/f`, { offset: 0, maxLength: data.length + 1 });
    expect((await drain(ok.stream)).length).toBe(data.length);
  });

  it('a reset mid-body is a retryable EUPSTREAM on the stream', async () => {
    up.files.set('/f', { body: data, fault: { kind: 'reset', at: 100_000 } });
    const r = await httpFetcher(noEnv).fetch(`${up.url}/f`, { offset: 0, maxLength: data.length + 1 });
    const err = await drain(r.stream).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isAirlockError(err, 'EUPSTREAM')).toBe(true);
    expect((err as { details: { retryable: boolean } }).details.retryable).toBe(true);
  });

  it('a stall past the timeout is EUPSTREAM', async () => {
    up.files.set('/f', { body: data, fault: { kind: 'stall', at: 1000 } });
    const t0 = Date.now();
    const r = await httpFetcher({ ...noEnv, stallTimeoutMs: 300 }).fetch(`${up.url}/f`, { offset: 0, maxLength: data.length + 1 });
    await expect(drain(r.stream)).rejects.toMatchObject({ code: 'EUPSTREAM', details: { cause: 'stall' } });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('cuts an endless body at maxLength', async () => {
    up.files.set('/f', { body: data, fault: { kind: 'oversize', extra: 50 * 1024 * 1024 } });
    const r = await httpFetcher(noEnv).fetch(`${up.url}/f`, { offset: 0, maxLength: data.length + 1 });
    expect((await drain(r.stream)).length).toBe(data.length + 1);
    expect(up.bytesSent('/f')).toBeLessThan(data.length + 20 * 1024 * 1024);
  });

  it('follows a redirect to another host without the Authorization header', async () => {
    const other = await startFaultUpstream();
    try {
      other.files.set('/blob', { body: data });
      up.files.set('/same', { body: data });
      up.files.set('/r1', { body: data, fault: { kind: 'redirect', to: `${other.url}/blob` } });
      up.files.set('/r2', { body: data, fault: { kind: 'redirect', to: '/same' } });
      const client = createHttpClient(noEnv);
      const a = await client.request(`${up.url}/r1`, { headers: { Authorization: 'Bearer secret' } });
      expect(a.status).toBe(200);
      await drain(a.body);
      expect(other.requests[0]?.headers.authorization).toBeUndefined();
      const b = await client.request(`${up.url}/r2`, { headers: { Authorization: 'Bearer secret' } });
      await drain(b.body);
      expect(up.requests.at(-1)?.headers.authorization).toBe('Bearer secret');
      client.close();
    } finally {
      await other.close();
    }
  });
});

describe('a presigned URL behind a redirect (a cache with redirect_blobs, a registry\'s blob storage)', () => {
  it('a 403 from the host the redirect sent us to is retryable, and asking again redirects afresh; Range goes on every hop; a 403 without a redirect is not retryable', async () => {
    const up = await startFaultUpstream();
    const bucket = await startFaultUpstream();
    try {
      bucket.files.set('/blob', { body: data, fault: { kind: 'status', status: 403, times: 1 } });
      up.files.set('/cache/blob', { body: data, fault: { kind: 'redirect', to: `${bucket.url}/blob?X-Amz-Signature=secret` } });
      const f = httpFetcher({ env: {} });
      const expired = await f.fetch(`${up.url}/cache/blob`, { offset: 1000, maxLength: data.length + 1 }).catch((e: unknown) => e);
      expect(expired).toMatchObject({ code: 'EUPSTREAM', details: { status: 403, cause: 'redirect target', retryable: true, redirectedTo: `${bucket.url}/blob` } });
      // the signature stays out of the message (it is logged)
      expect((expired as Error).message).not.toMatch(/secret/);
      const again = await f.fetch(`${up.url}/cache/blob`, { offset: 1000, maxLength: data.length + 1 });
      expect(again.offset).toBe(1000);
      expect(bucket.requests.map((r) => r.headers.range)).toEqual(['bytes=1000-', 'bytes=1000-']);
      expect((await drain(again.stream)).equals(data.subarray(1000))).toBe(true);

      up.files.set('/direct', { body: data, fault: { kind: 'status', status: 403 } });
      await expect(f.fetch(`${up.url}/direct`, { offset: 0, maxLength: 10 })).rejects.toMatchObject({
        code: 'EUPSTREAM',
        details: { status: 403, retryable: false },
      });
    } finally {
      await bucket.close();
      await up.close();
    }
  });
});

describe('hostile answers are refused, not retried', () => {
  let up: FaultUpstream;
  beforeEach(async () => {
    up = await startFaultUpstream();
  });
  afterEach(async () => {
    await up.close();
  });
  const noEnv = { env: {} };

  it('a Content-Length above what may be read is EINTEGRITY before any body byte is handed over', async () => {
    up.files.set('/f', { body: data, fault: { kind: 'length', length: 40 * 2 ** 30 } });
    const t0 = Date.now();
    const err = await httpFetcher(noEnv)
      .fetch(`${up.url}/f`, { offset: 0, maxLength: data.length + 1 })
      .then(
        async (r) => {
          r.stream.destroy();
          return null;
        },
        (e: unknown) => e,
      );
    expect(err).toMatchObject({ code: 'EINTEGRITY', details: { contentLength: 40 * 2 ** 30, retryable: false } });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it.each([
    ['file:', 'file:///etc/passwd'],
    ['ftp:', 'ftp://127.0.0.1:21/f'],
    ['gopher:', 'gopher://127.0.0.1:70/_x'],
  ])('a redirect to %s is a non-retryable EUPSTREAM', async (_s, to) => {
    up.files.set('/r', { body: data, fault: { kind: 'redirect', to } });
    await expect(httpFetcher(noEnv).fetch(`${up.url}/r`, { offset: 0, maxLength: 10 })).rejects.toMatchObject({
      code: 'EUPSTREAM',
      details: { retryable: false, cause: 'redirect scheme' },
    });
  });

  it('a redirect loop is named as one and not retryable', async () => {
    up.files.set('/a', { body: data, fault: { kind: 'redirect', to: '/b' } });
    up.files.set('/b', { body: data, fault: { kind: 'redirect', to: '/a' } });
    await expect(httpFetcher(noEnv).fetch(`${up.url}/a`, { offset: 0, maxLength: 10 })).rejects.toMatchObject({
      code: 'EUPSTREAM',
      details: { retryable: false, cause: 'redirect loop' },
    });
    expect(up.requests.map((r) => r.path)).toEqual(['/a', '/b']);
  });

  it('a redirect from a public name to a loopback address is refused before connecting', async () => {
    const proxy = await startTestProxy({ 'files.upstream.test': '127.0.0.1' });
    const inside = await startFaultUpstream();
    try {
      inside.files.set('/secret', { body: data });
      up.files.set('/r', { body: data, fault: { kind: 'redirect', to: `http://127.0.0.1:${inside.port}/secret` } });
      const f = httpFetcher({ env: { http_proxy: proxy.url, no_proxy: '127.0.0.1' } });
      await expect(f.fetch(`http://files.upstream.test:${up.port}/r`, { offset: 0, maxLength: 10 })).rejects.toMatchObject({
        code: 'EUPSTREAM',
        details: { retryable: false, cause: 'redirect target' },
      });
      expect(inside.requests).toHaveLength(0);
    } finally {
      await inside.close();
      await proxy.close();
    }
  });

  it('a Content-Range that does not start where asked is a non-retryable protocol error', async () => {
    const server = (await import('node:http')).createServer((_req, res) => {
      res.writeHead(206, { 'content-range': `bytes 0-9/${data.length}`, 'content-length': 10 }).end(data.subarray(0, 10));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
      await expect(httpFetcher(noEnv).fetch(url, { offset: 500, maxLength: 100 })).rejects.toMatchObject({ code: 'EUPSTREAM', details: { retryable: false } });
    } finally {
      server.close();
    }
  });

  it('an answer that is not HTTP is a non-retryable protocol error', async () => {
    const net = await import('node:net');
    const server = net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.2\r\n'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
      await expect(httpFetcher(noEnv).fetch(url, { offset: 0, maxLength: 100 })).rejects.toMatchObject({
        code: 'EUPSTREAM',
        details: { retryable: false, cause: 'protocol error' },
      });
    } finally {
      server.close();
    }
  });
});

describe('httpFetcher through a proxy', () => {
  let up: FaultUpstream;
  let proxy: TestProxy;
  beforeEach(async () => {
    up = await startFaultUpstream();
    proxy = await startTestProxy({ 'files.upstream.test': '127.0.0.1', 'secure.upstream.test': '127.0.0.1', 'internal.test': '127.0.0.1' });
    up.files.set('/f', { body: data });
  });
  afterEach(async () => {
    await proxy.close();
    await up.close();
  });

  it('uses http_proxy from the environment and never resolves the upstream name', async () => {
    const asked: string[] = [];
    const url = `http://files.upstream.test:${up.port}/f`;
    const r = await httpFetcher({ env: { http_proxy: proxy.url }, dnsLookup: guardedLookup(asked) }).fetch(url, {
      offset: 0,
      maxLength: data.length + 1,
    });
    expect((await drain(r.stream)).equals(data)).toBe(true);
    expect(proxy.log).toContain(`GET ${url}`);
    expect(asked).toEqual([]);
  });

  it('--proxy wins over the environment', async () => {
    const url = `http://files.upstream.test:${up.port}/f`;
    const r = await httpFetcher({ proxy: proxy.url, env: { HTTP_PROXY: 'http://127.0.0.1:1' } }).fetch(url, {
      offset: 0,
      maxLength: data.length + 1,
    });
    await drain(r.stream);
    expect(proxy.log).toContain(`GET ${url}`);
  });

  it('honours no_proxy (direct connection, proxy untouched)', async () => {
    const r = await httpFetcher({ env: { HTTP_PROXY: proxy.url, NO_PROXY: 'localhost,127.0.0.1' } }).fetch(`${up.url}/f`, {
      offset: 0,
      maxLength: data.length + 1,
    });
    await drain(r.stream);
    expect(proxy.log).toEqual([]);
    expect(up.requests).toHaveLength(1);
  });

  it('a redirect keeps the proxy of the URL it came from, even to a no_proxy host', async () => {
    const asked: string[] = [];
    up.files.set('/r', { body: data, fault: { kind: 'redirect', to: `http://internal.test:${up.port}/f` } });
    const url = `http://files.upstream.test:${up.port}/r`;
    const r = await httpFetcher({ env: { http_proxy: proxy.url, no_proxy: 'internal.test' }, dnsLookup: guardedLookup(asked) }).fetch(url, {
      offset: 0,
      maxLength: data.length + 1,
    });
    expect((await drain(r.stream)).equals(data)).toBe(true);
    expect(proxy.log).toEqual([`GET ${url}`, `GET http://internal.test:${up.port}/f`]);
    expect(asked).toEqual([]);
  });

  it('a direct URL redirecting to a proxied host follows the proxy policy for that host', async () => {
    up.files.set('/r', { body: data, fault: { kind: 'redirect', to: `http://files.upstream.test:${up.port}/f` } });
    const r = await httpFetcher({ env: { http_proxy: proxy.url, no_proxy: '127.0.0.1' } }).fetch(`${up.url}/r`, { offset: 0, maxLength: data.length + 1 });
    await drain(r.stream);
    expect(proxy.log).toEqual([`GET http://files.upstream.test:${up.port}/f`]);
  });

  it('without the proxy a fake upstream name cannot be reached', async () => {
    const asked: string[] = [];
    await expect(
      httpFetcher({ env: {}, dnsLookup: guardedLookup(asked) }).fetch(`http://files.upstream.test:${up.port}/f`, { offset: 0, maxLength: 10 }),
    ).rejects.toMatchObject({ code: 'EUPSTREAM' });
    expect(asked).toEqual(['files.upstream.test']);
  });

  it('https goes through CONNECT and trusts --ca-file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=secure.upstream.test', '-addext', 'subjectAltName=DNS:secure.upstream.test',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    const server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) => {
      res.end('secret-ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const url = `https://secure.upstream.test:${port}/x`;
      const noCa = httpFetcher({ env: { https_proxy: proxy.url } });
      // not a network failure a re-run cures: what to do instead
      await expect(noCa.fetch(url, { offset: 0, maxLength: 100 })).rejects.toMatchObject({
        code: 'EUSAGE',
        message: expect.stringContaining('give its CA with --ca-file PEM'),
      });
      const r = await httpFetcher({ env: { https_proxy: proxy.url }, caFile: join(dir, 'cert.pem') }).fetch(url, { offset: 0, maxLength: 100 });
      expect((await drain(r.stream)).toString()).toBe('secret-ok');
      expect(proxy.log).toContain(`CONNECT secure.upstream.test:${port}`);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('failures name their cause', () => {
  const certFor = (dir: string, name: string, san: string): { key: Buffer; cert: Buffer; file: string } => {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`,
      '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)), file: join(dir, `${name}.pem`) };
  };
  const failure = async (p: Promise<unknown>): Promise<{ code: string; message: string; details: Record<string, unknown> }> => {
    try {
      await p;
    } catch (e) {
      if (isAirlockError(e)) return e;
      throw e;
    }
    throw new Error('expected a failure');
  };

  it('a name that does not resolve while no proxy is set says so, and how to set one', async () => {
    const client = createHttpClient({ env: {}, proxy: null });
    try {
      const err = await failure(client.request('http://no-such-host.invalid/a.tgz'));
      expect(err.code).toBe('EUPSTREAM');
      expect(err.message).toBe(
        'http://no-such-host.invalid/a.tgz: no-such-host.invalid does not resolve, and no proxy is set for it; set --proxy or http_proxy/https_proxy (or proxy in the config)',
      );
      // the node's cache client never uses a proxy: it is told to check --cache instead
      const cache = createHttpClient({ env: {}, proxy: null, peer: 'cache' });
      const e2 = await failure(cache.request('http://no-such-cache.invalid:7070/releases'));
      expect(e2.message).toMatch(/cache host no-such-cache\.invalid does not resolve; check --cache/);
      cache.close();
    } finally {
      client.close();
    }
  });

  it('a proxy that refuses the connection is named as the cause', async () => {
    const closed = await new Promise<number>((r) => {
      const s = https.createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => r(port));
      });
    });
    for (const url of ['http://files.upstream.test/a.tgz', 'https://files.upstream.test/a.tgz']) {
      const client = createHttpClient({ proxy: `http://127.0.0.1:${closed}` });
      try {
        const err = await failure(client.request(url));
        expect(err.code).toBe('EUPSTREAM');
        expect(err.message).toBe(`${url}: proxy 127.0.0.1:${closed} refused the connection; check --proxy or http_proxy/https_proxy, and that the proxy is running`);
      } finally {
        client.close();
      }
    }
  });

  it('TLS: an untrusted certificate asks for --ca-file, a wrong name names the certificate\'s names; neither is EUPSTREAM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-tls-cause-'));
    const onlyName = certFor(dir, 'cache.site.test', 'DNS:cache.site.test');
    const server = https.createServer({ key: onlyName.key, cert: onlyName.cert }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const url = `https://127.0.0.1:${port}/releases`;
    try {
      const untrusted = createHttpClient({ env: {}, proxy: null });
      const e1 = await failure(untrusted.request(url));
      untrusted.close();
      expect(e1.code).toBe('EUSAGE');
      expect(e1.message).toMatch(/TLS: the certificate of 127\.0\.0\.1:\d+ is not signed by a CA this machine trusts \(DEPTH_ZERO_SELF_SIGNED_CERT\); give its CA with --ca-file PEM \(ca_file in the config\)$/);
      expect(e1.details).toMatchObject({ cause: 'tls', retryable: false });

      const trusted = createHttpClient({ env: {}, proxy: null, caFile: onlyName.file });
      const e2 = await failure(trusted.request(url));
      trusted.close();
      expect(e2.code).toBe('EUSAGE');
      expect(e2.message).toMatch(/TLS: the certificate of 127\.0\.0\.1:\d+ does not match that name: it is for cache\.site\.test; use a name the certificate holds/);

      // the right name with the right CA: it answers (dnsLookup stands in for the site's DNS)
      const lookup = ((_h: string, o: unknown, cb: (e: null, a: unknown, f?: number) => void) => {
        if (typeof o === 'object' && o && (o as { all?: boolean }).all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
        else cb(null, '127.0.0.1', 4);
      }) as unknown as LookupFunction;
      const right = createHttpClient({ env: {}, proxy: null, caFile: onlyName.file, dnsLookup: lookup });
      const ok = await right.request(`https://cache.site.test:${port}/releases`);
      expect((await drain(ok.body)).toString()).toBe('ok');
      right.close();
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
