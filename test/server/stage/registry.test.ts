import { describe, expect, it } from 'vitest';
import { checkRealm } from '../../../server/stage/registry.js';

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
