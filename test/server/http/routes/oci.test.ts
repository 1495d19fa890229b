/**
 * The registry API as operators and their tools know it: `/v2/_catalog` and
 * `tags/list` paginated with `n`, `last` and `Link`; pushes answered 405
 * UNSUPPORTED (skopeo fails cleanly); one repository path staged from two
 * registries is served apart, chosen with containerd's `?ns=HOST`.
 */
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrustedRoot, verifyRelease, type ReleaseManifest } from '../../../../manifests/index.js';
import { makeTrust, signRelease } from '../../../../scripts/world/keys.js';
import { createServer, type AirlockApp } from '../../../../server/http/index.js';
import { json, raw } from '../client.js';
import { makeFixture, type Fixture } from '../fixture.js';
import { readFile } from 'node:fs/promises';

let fx: Fixture;
let srv: AirlockApp;
let server: http.Server;
let port: number;

/** a second release listing the fixture's image under other names: the same bytes, other registries and tags */
async function stageImageNames(images: string[]): Promise<void> {
  const img = fx.manifest.artifacts.find((a) => a.kind === 'oci-image')!;
  const trust = makeTrust(join(fx.dir, 'keys-images'));
  const now = new Date();
  const payload: ReleaseManifest = {
    type: 'airlock-release', spec: 1, product: 'images', release: 'img-1', serial: 1,
    issued: new Date(now.getTime() - 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    expires: new Date(now.getTime() + 30 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    artifacts: images.map((image, i) => ({ ...img, path: `images/n${i}`, image })),
  };
  const root = loadTrustedRoot(await readFile(trust.rootJsonPath), now);
  await fx.store.putRelease(verifyRelease(signRelease(payload, trust), { root, now }));
}

beforeAll(async () => {
  fx = await makeFixture();
  await stageImageNames([
    'docker.io/library/app:1.0',
    'quay.io/library/app:2.0',
    'ghcr.io/team/tool:1.0',
    'quay.io/team/tool:2.0',
    ...['a', 'b', 'c', 'd', 'e'].map((x) => `registry.example.org/page/${x}:1.0`),
    ...['1', '2', '3', '4', '5'].map((t) => `registry.example.org/page/tagged:v${t}`),
  ]);
  srv = createServer({ adminToken: null, passthrough: false }, { store: fx.store, catalogTtlMs: 0 });
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

describe('/v2/_catalog and tags/list pagination', () => {
  it('_catalog lists every repository path in order; n, last and Link walk it page by page', async () => {
    const all = await raw(port, '/v2/_catalog');
    expect(all.status).toBe(200);
    expect(all.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(all.headers.link).toBeUndefined();
    const names = json(all).repositories as string[];
    expect(names).toEqual(['demo/app', 'library/app', 'page/a', 'page/b', 'page/c', 'page/d', 'page/e', 'page/tagged', 'team/tool']);

    const seen: string[] = [];
    let next: string | undefined = '/v2/_catalog?n=4';
    let pages = 0;
    while (next) {
      const r = await raw(port, next);
      expect(r.status).toBe(200);
      const page = json(r).repositories as string[];
      expect(page.length).toBeLessThanOrEqual(4);
      seen.push(...page);
      pages++;
      const link = r.headers.link;
      next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1] : undefined;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(names);
    const first = await raw(port, '/v2/_catalog?n=4');
    expect(first.headers.link).toBe('</v2/_catalog?last=page%2Fb&n=4>; rel="next"');
    expect(json(await raw(port, '/v2/_catalog?last=page/d&n=100')).repositories).toEqual(['page/e', 'page/tagged', 'team/tool']);
    expect(json(await raw(port, '/v2/_catalog?ns=quay.io')).repositories).toEqual(['library/app', 'team/tool']);
    const bad = await raw(port, '/v2/_catalog?n=-1');
    expect(bad.status).toBe(400);
    expect(json(bad).errors[0].code).toBe('PAGINATION_NUMBER_INVALID');
  });

  it('tags/list honours n and last with a Link to the next page', async () => {
    const r = await raw(port, '/v2/page/tagged/tags/list?n=2');
    expect(json(r)).toEqual({ name: 'page/tagged', tags: ['v1', 'v2'] });
    expect(r.headers.link).toBe('</v2/page/tagged/tags/list?last=v2&n=2>; rel="next"');
    const r2 = await raw(port, '/v2/page/tagged/tags/list?last=v2&n=2');
    expect(json(r2).tags).toEqual(['v3', 'v4']);
    const r3 = await raw(port, '/v2/page/tagged/tags/list?last=v4&n=2');
    expect(json(r3).tags).toEqual(['v5']);
    expect(r3.headers.link).toBeUndefined();
    expect(json(await raw(port, '/v2/page/tagged/tags/list')).tags).toEqual(['v1', 'v2', 'v3', 'v4', 'v5']);
  });
});

describe('one path from two registries', () => {
  it('served apart: ?ns=HOST picks the registry; without it the default registry (docker.io) answers', async () => {
    expect(json(await raw(port, '/v2/library/app/tags/list')).tags).toEqual(['1.0']);
    expect(json(await raw(port, '/v2/library/app/tags/list?ns=docker.io')).tags).toEqual(['1.0']);
    expect(json(await raw(port, '/v2/library/app/tags/list?ns=quay.io')).tags).toEqual(['2.0']);
    expect((await raw(port, '/v2/library/app/manifests/1.0')).status).toBe(200);
    // quay.io's tag is not reachable through docker.io's repository, and the other way round
    const leak = await raw(port, '/v2/library/app/manifests/2.0');
    expect(leak.status).toBe(404);
    expect(json(leak).errors[0].code).toBe('MANIFEST_UNKNOWN');
    expect((await raw(port, '/v2/library/app/manifests/2.0?ns=quay.io')).status).toBe(200);
    expect((await raw(port, '/v2/library/app/manifests/1.0?ns=quay.io')).status).toBe(404);
    const layer = (json(await raw(port, '/v2/library/app/manifests/2.0?ns=quay.io')).layers[0].digest) as string;
    expect((await raw(port, `/v2/library/app/blobs/${layer}?ns=quay.io`)).status).toBe(200);
    // an image without a host is Docker Hub's, as are its aliases
    expect(json(await raw(port, '/v2/library/app/tags/list?ns=registry-1.docker.io')).tags).toEqual(['1.0']);
    const other = await raw(port, '/v2/library/app/tags/list?ns=ghcr.io');
    expect(other.status).toBe(404);
    expect(json(other).errors[0]).toMatchObject({ code: 'NAME_UNKNOWN', message: expect.stringContaining('docker.io, quay.io') });
  });

  it('neither registry the default: without ns the answer names both and asks for ?ns=', async () => {
    const r = await raw(port, '/v2/team/tool/tags/list');
    expect(r.status).toBe(404);
    expect(json(r).errors[0].code).toBe('NAME_UNKNOWN');
    expect(json(r).errors[0].message).toBe('repository team/tool is staged from several registries (ghcr.io, quay.io): name one with ?ns=HOST');
    expect(json(await raw(port, '/v2/team/tool/tags/list?ns=ghcr.io')).tags).toEqual(['1.0']);
    expect(json(await raw(port, '/v2/team/tool/tags/list?ns=quay.io')).tags).toEqual(['2.0']);
    // the only registry of a path needs no ns (the fixture's image)
    expect(json(await raw(port, '/v2/demo/app/tags/list')).tags).toEqual(['1.0']);
    expect((await raw(port, '/v2/demo/app/tags/list?ns=bad%20host')).status).toBe(400);
  });
});

describe('read-only', () => {
  it('every write under /v2/ is 405 UNSUPPORTED "read-only: …", never NAME_UNKNOWN', async () => {
    const writes: Array<[string, string]> = [
      ['POST', '/v2/x/blobs/uploads/'],
      ['POST', '/v2/demo/app/blobs/uploads/?digest=sha256:' + '0'.repeat(64)],
      ['PATCH', '/v2/x/blobs/uploads/1234'],
      ['PUT', '/v2/x/blobs/uploads/1234?digest=sha256:' + '0'.repeat(64)],
      ['PUT', '/v2/x/manifests/y'],
      ['PUT', '/v2/demo/app/manifests/1.0'],
      ['DELETE', `/v2/demo/app/manifests/sha256:${fx.imageDigest}`],
      ['DELETE', `/v2/demo/app/blobs/sha256:${fx.imageDigest}`],
      ['POST', '/v2/_catalog'],
    ];
    for (const [method, path] of writes) {
      const r = await raw(port, path, { method, body: method === 'DELETE' ? undefined : '{}' });
      expect(r.status, `${method} ${path}: ${r.body}`).toBe(405);
      expect(r.headers.allow).toMatch(/GET/);
      const err = json(r).errors[0];
      expect(err.code).toBe('UNSUPPORTED');
      expect(err.message).toMatch(/^read-only: /);
    }
  });

  it('skopeo copy to the cache fails cleanly, saying the registry is read-only', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((done) =>
      execFile(
        'skopeo',
        ['copy', '--retry-times', '0', `oci:${fx.ociLayout}`, `docker://127.0.0.1:${port}/x/y:1`, '--dest-tls-verify=false'],
        { timeout: 60_000 },
        (e, _out, stderr) => done({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/read-only/);
    expect(r.stderr).not.toMatch(/name unknown/i);
  });
});
