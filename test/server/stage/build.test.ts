import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { buildPayload, gemFromFileName } from '../../../server/stage/build.js';
import { RegistryClient } from '../../../server/stage/registry.js';
import { createHttpClient } from '../../../storage/fetch/http.js';
import { createOutput } from '../../../common/output.js';
import { sha256, startFaultUpstream, startTestProxy, type FaultUpstream, type TestProxy } from '../../support/fault-upstream.js';

const sink = new Writable({ write: (_c, _e, cb) => cb() });
const out = createOutput(true, { stdout: sink, stderr: sink });

/** A real .deb made with dpkg-deb, so `manifest build` reads its fields like a publisher's would. */
function makeDeb(dir: string): Buffer {
  const root = join(dir, 'pkg');
  mkdirSync(join(root, 'DEBIAN'), { recursive: true });
  mkdirSync(join(root, 'usr/share/demo'), { recursive: true });
  writeFileSync(join(root, 'usr/share/demo/hello.txt'), 'hello\n');
  writeFileSync(join(root, 'DEBIAN/control'), 'Package: demo-hello\nVersion: 1.2-3\nArchitecture: amd64\nMaintainer: T <t@example.invalid>\nDescription: demo\n');
  execFileSync('dpkg-deb', ['--build', '--root-owner-group', root, join(dir, 'demo.deb')], { stdio: 'ignore' });
  return readFileSync(join(dir, 'demo.deb'));
}

describe('manifest build', () => {
  let up: FaultUpstream;
  let proxy: TestProxy;
  let dir: string;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-build-'));
    up = await startFaultUpstream();
    proxy = await startTestProxy({ 'pub.upstream.test': '127.0.0.1' });
  });
  afterEach(async () => {
    await proxy.close();
    await up.close();
  });

  it('reads gem name and version from file names', () => {
    expect(gemFromFileName('rack-2.2.8.gem')).toEqual({ gem: 'rack', version: '2.2.8' });
    expect(gemFromFileName('nokogiri-1.15.0-x86_64-linux.gem')).toEqual({ gem: 'nokogiri', version: '1.15.0' });
    expect(gemFromFileName('net-http-0.4.1.gem')).toEqual({ gem: 'net-http', version: '0.4.1' });
  });

  it('fetches through the proxy, hashes, reads deb fields, resolves an index tag to linux/amd64', async () => {
    const tgz = Buffer.from('router tarball bytes');
    const gem = Buffer.from('gem bytes');
    const deb = makeDeb(dir);
    up.files.set('/c/router.tgz', { body: tgz });
    up.files.set('/g/rack-2.2.8.gem', { body: gem });
    up.files.set('/d/demo.deb', { body: deb });
    const config = Buffer.from('{"os":"linux"}');
    const layer = Buffer.from('layer');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${sha256(config)}`, size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${sha256(layer)}`, size: layer.length }],
      }),
    );
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 10, platform: { os: 'linux', architecture: 'arm64' } },
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${sha256(manifest)}`, size: manifest.length, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      }),
    );
    up.registry(
      [
        {
          name: 'demo/app',
          tags: { '1.0': `sha256:${sha256(index)}` },
          manifests: {
            [`sha256:${sha256(index)}`]: { body: index, mediaType: 'application/vnd.oci.image.index.v1+json' },
            [`sha256:${sha256(manifest)}`]: { body: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json' },
          },
          blobs: {},
        },
      ],
      // the token realm is on the registry's own host, as registries announce it (another host would be refused)
      { auth: true, realm: `http://pub.upstream.test:${up.port}/token` },
    );
    const base = `http://pub.upstream.test:${up.port}`;
    const http = createHttpClient({ env: { http_proxy: proxy.url } });
    const registry = new RegistryClient({ http, insecureRegistries: [`pub.upstream.test:${up.port}`] });
    const payload = await buildPayload(
      {
        product: 'stackato',
        release: '3.6.2',
        serial: 17,
        expires: '2030-01-01',
        files: [{ url: `${base}/c/router.tgz`, path: 'components/router.tgz', roles: ['router'], install: { extract: '/s/code/router' } }],
        debs: [`${base}/d/demo.deb`],
        gems: [`${base}/g/rack-2.2.8.gem`],
        images: [`pub.upstream.test:${up.port}/demo/app:1.0`],
      },
      { http, registry, out },
    );
    http.close();
    const [f, d, g, i] = payload.artifacts;
    expect(f).toMatchObject({ kind: 'file', path: 'components/router.tgz', sha256: sha256(tgz), size: tgz.length, roles: ['router'] });
    expect(d).toMatchObject({ kind: 'deb', path: 'debs/demo.deb', package: 'demo-hello', version: '1.2-3', arch: 'amd64', sha256: sha256(deb) });
    expect(g).toMatchObject({ kind: 'gem', gem: 'rack', version: '2.2.8', sha256: sha256(gem) });
    expect(i).toMatchObject({
      kind: 'oci-image',
      path: 'images/demo/app',
      sha256: sha256(manifest),
      size: manifest.length,
      blobs: [
        { sha256: sha256(config), size: config.length },
        { sha256: sha256(layer), size: layer.length },
      ],
    });
    expect(payload.expires).toBe('2030-01-01T00:00:00Z');
    expect(proxy.log.some((l) => l === `GET ${base}/d/demo.deb`)).toBe(true);
  });
});
