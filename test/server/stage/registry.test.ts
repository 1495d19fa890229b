import { describe, expect, it } from 'vitest';
import { checkRealm, parseImageRef, RegistryClient } from '../../../server/stage/registry.js';
import { createHttpClient } from '../../../storage/index.js';
import { sha256, startFaultUpstream } from '../../support/fault-upstream.js';

describe('checkRealm: where a registry may send us for a token', () => {
  it.each([
    ['https://registry-1.docker.io/v2/x', 'https://auth.docker.io/token', true],
    ['https://ghcr.io/v2/x', 'https://ghcr.io/token', true],
    ['https://quay.io/v2/x', 'https://quay.io/v2/auth', true],
    ['https://registry.example.com/v2/x', 'https://auth.example.com/token', true],
    ['https://registry.example.com/v2/x', 'https://example.com/token', true],
    ['http://127.0.0.1:5000/v2/x', 'http://127.0.0.1:5001/token', true],
    ['https://registry.example.com/v2/x', 'https://evil.example.net/token', false],
    ['https://example.com/v2/x', 'https://evil.com/token', false],
    ['https://registry.example.com/v2/x', 'http://auth.example.com/token', false],
    ['https://registry.example.com/v2/x', 'file:///etc/passwd', false],
    ['http://127.0.0.1:5000/v2/x', 'http://localhost:5000/token', false],
    ['http://10.0.0.5:5000/v2/x', 'http://10.0.0.6/token', false],
    ['https://registry.example.com/v2/x', 'not a url', false],
  ])('registry %s, realm %s → allowed %s', (registry, realm, allowed) => {
    const run = (): URL => checkRealm(realm, new URL(registry));
    if (allowed) expect(run().href).toBe(new URL(realm).href);
    else expect(run).toThrow(expect.objectContaining({ code: 'EUPSTREAM', details: expect.objectContaining({ cause: 'token realm', retryable: false }) }));
  });
});

describe('RegistryClient against a slow token endpoint', () => {
  it('a token trickled a byte at a time fails after tokenTimeoutMs, not never', async () => {
    const up = await startFaultUpstream();
    const http = createHttpClient({ env: {}, stallTimeoutMs: 5000 });
    try {
      const body = Buffer.from('{"schemaVersion":2,"config":{},"layers":[]}');
      const digest = `sha256:${sha256(body)}`;
      up.registry([{ name: 'demo/app', tags: {}, manifests: { [digest]: { body, mediaType: 'application/vnd.oci.image.manifest.v1+json' } }, blobs: {} }], {
        auth: true,
        trickleTokenMs: 100,
      });
      const registry = new RegistryClient({ http, insecureRegistries: [`127.0.0.1:${up.port}`], tokenTimeoutMs: 600 });
      const t0 = Date.now();
      await expect(registry.manifest(parseImageRef(`127.0.0.1:${up.port}/demo/app@${digest}`), digest)).rejects.toMatchObject({
        code: 'EUPSTREAM',
        details: { cause: 'too slow' },
      });
      expect(Date.now() - t0).toBeLessThan(4000);
    } finally {
      http.close();
      await up.close();
    }
  }, 15_000);
});
