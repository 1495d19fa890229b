import { describe, expect, it } from 'vitest';
import { parseImageRef } from '../../manifests/image-ref.js';
import { isAirlockError } from '../../manifests/errors.js';

describe('parseImageRef', () => {
  it.each([
    ['docker.example.com/stackato/router:3.6.2', { host: 'docker.example.com', path: 'stackato/router', tag: '3.6.2', digest: null }],
    ['registry.upstream.test:5000/demo/app:1.0', { host: 'registry.upstream.test:5000', path: 'demo/app', tag: '1.0', digest: null }],
    ['localhost/app', { host: 'localhost', path: 'app', tag: null, digest: null }],
    ['ubuntu', { host: null, path: 'ubuntu', tag: null, digest: null }],
    ['team/app:v1', { host: null, path: 'team/app', tag: 'v1', digest: null }],
    [`a/b:1@sha256:${'a'.repeat(64)}`, { host: null, path: 'a/b', tag: '1', digest: `sha256:${'a'.repeat(64)}` }],
  ])('%s', (text, expected) => {
    expect(parseImageRef(text)).toEqual(expected);
  });

  it.each(['Team/App:1', 'a/b:', 'a/b@sha256:xyz', 'a//b', ''])('refuses %j with the given code', (text) => {
    try {
      parseImageRef(text, 'EMANIFEST');
      expect.unreachable();
    } catch (e) {
      expect(isAirlockError(e, 'EMANIFEST')).toBe(true);
    }
  });
});
