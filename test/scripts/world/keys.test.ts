/**
 * The world's test keys and release payloads go through the real trust core:
 * a root made by makeTrust loads, and a release signed by signRelease verifies.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { keyIdOf, loadTrustedRoot, verifyRelease } from '../../../manifests/index.js';
import { makeTrust, releasePayload, signRelease, type WorldArtifact, type WorldImage } from '../../../scripts/world/index.js';

const hex = (c: string) => c.repeat(64);

/** the fields releasePayload reads, without starting servers */
const fakeWorld = {
  artifacts: [
    {
      path: 'debs/hello_2.10-3_amd64.deb', kind: 'deb', sha256: hex('a'), size: 10, urls: ['http://debs.upstream.test:1/pool/main/hello_2.10-3_amd64.deb'],
      package: 'hello', version: '2.10-3', arch: 'amd64', localPath: '/nowhere', directUrl: 'http://127.0.0.1:1/x',
    },
    {
      path: 'files/app.tar.gz', kind: 'file', sha256: hex('b'), size: 20, urls: ['http://files.upstream.test:1/app.tar.gz'],
      install: { extract: '/opt/demo' }, localPath: '/nowhere', directUrl: 'http://127.0.0.1:1/y',
    },
  ] as WorldArtifact[],
  image: {
    artifact: {
      path: 'images/demo/app', kind: 'oci-image', sha256: hex('c'), size: 500, image: 'registry.upstream.test:1/demo/app:1.0',
      mediaType: 'application/vnd.oci.image.manifest.v1+json', blobs: [{ sha256: hex('d'), size: 5 }, { sha256: hex('e'), size: 6 }],
    },
  } as WorldImage,
};

describe('scripts/world keys', () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), 'airlock-keys-')); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it('makes a root the trust core loads, with private keys 0600', async () => {
    const trust = makeTrust(dir);
    const root = loadTrustedRoot(trust.rootJson, new Date());
    expect(root.version).toBe(1);
    expect(root.payload.roles.release.keyids).toEqual([trust.release.keyid]);
    expect(trust.release.keyid).toBe(keyIdOf(trust.release.publicKey));
    expect((await stat(join(dir, 'root.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'release.pub'))).isFile()).toBe(true);
  });

  it('signs a world release payload that verifies, image included', () => {
    const trust = makeTrust(dir);
    const payload = releasePayload(fakeWorld, { product: 'demo', release: '1.0', serial: 3 });
    const envelope = signRelease(payload, trust);
    const now = new Date();
    const v = verifyRelease(envelope, { root: loadTrustedRoot(trust.rootJson, now), now, product: 'demo' });
    expect(v.manifest.artifacts.map((a) => a.path)).toEqual(['debs/hello_2.10-3_amd64.deb', 'files/app.tar.gz', 'images/demo/app']);
    expect(v.signers).toEqual([trust.release.keyid]);
    expect(JSON.stringify(v.manifest)).not.toContain('localPath');
  });

  it('a release signed by the root key alone does not verify', () => {
    const trust = makeTrust(dir);
    const payload = releasePayload(fakeWorld, { product: 'demo', release: '1.0', serial: 1 });
    const now = new Date();
    expect(() => verifyRelease(signRelease(payload, trust, [trust.root.privateKey]), { root: loadTrustedRoot(trust.rootJson, now), now }))
      .toThrow(expect.objectContaining({ code: 'ESIGNATURE' }));
  });
});
