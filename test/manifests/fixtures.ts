/** Shared bytes-only fixtures for the manifests suites: keys, roots, manifests, envelopes. */
import { expect } from 'vitest';
import type { KeyObject } from 'node:crypto';
import {
  AirlockError,
  generateKey,
  keyIdOf,
  loadTrustedRoot,
  RELEASE_PAYLOAD_TYPE,
  signEnvelope,
  type ErrorCode,
  type GeneratedKey,
  type RootPayload,
  type TrustedRoot,
} from '../../manifests/index.js';
import { canon, rootPayload, signManifest, signRoot } from '../support/release.js';

export const NOW = new Date('2027-01-15T12:00:00Z');
export const HEX = (c: string): string => c.repeat(64);

export const keys = Array.from({ length: 6 }, () => generateKey());

export { canon, rootPayload, signRoot };

export function makeRoot(payload: RootPayload, signers: GeneratedKey[]): TrustedRoot {
  return loadTrustedRoot(signRoot(payload, signers), NOW);
}

/** Root key: keys[0]; release keys: keys[1], keys[2], threshold 1 unless given. */
export function defaultRoot(releaseThreshold = 1): TrustedRoot {
  return makeRoot(rootPayload({ root: [keys[0]!], release: [keys[1]!, keys[2]!], releaseThreshold }), [keys[0]!]);
}

export function manifest(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'airlock-release',
    spec: 1,
    product: 'stackato',
    release: '3.6.2',
    serial: 17,
    issued: '2026-11-20T00:00:00Z',
    expires: '2027-03-01T00:00:00Z',
    artifacts: [
      {
        path: 'components/router.tgz',
        kind: 'file',
        sha256: HEX('a'),
        size: 1234,
        urls: ['https://component-images.example.com/3.6.2/router.tgz'],
        roles: ['router'],
        install: { extract: '/s/code/router' },
      },
      {
        path: 'debs/hello_2.10-3_amd64.deb',
        kind: 'deb',
        sha256: HEX('b'),
        size: 5678,
        urls: ['http://archive.example.org/pool/main/h/hello/hello_2.10-3_amd64.deb'],
        package: 'hello',
        version: '2.10-3',
        arch: 'amd64',
      },
      {
        path: 'gems/rack-2.2.8.gem',
        kind: 'gem',
        sha256: HEX('c'),
        size: 91011,
        urls: ['https://rubygems.example.org/downloads/rack-2.2.8.gem'],
        gem: 'rack',
        version: '2.2.8',
      },
      {
        path: 'images/stackato/router',
        kind: 'oci-image',
        sha256: HEX('d'),
        size: 1578,
        image: 'docker.example.com/stackato/router:3.6.2',
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        blobs: [
          { sha256: HEX('e'), size: 1469 },
          { sha256: HEX('f'), size: 31457280 },
        ],
      },
    ],
    ...over,
  };
}

/** Envelope over exact payload bytes. */
export function envelopeOf(payload: Uint8Array, signers: KeyObject[] = [keys[1]!.privateKey], type = RELEASE_PAYLOAD_TYPE): Buffer {
  return signEnvelope(type, payload, signers);
}

export function signed(m: unknown = manifest(), signers: GeneratedKey[] = [keys[1]!]): Buffer {
  return signManifest(m, signers);
}

/** Edit an envelope's JSON structurally. */
export function editEnvelope(bytes: Buffer, edit: (env: { payloadType: string; payload: string; signatures: Array<Record<string, unknown>> }) => void): Buffer {
  const env = JSON.parse(bytes.toString('utf8'));
  edit(env);
  return Buffer.from(JSON.stringify(env));
}

export function expectCode(fn: () => unknown, code: ErrorCode, message?: RegExp): AirlockError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected an AirlockError').toBeInstanceOf(AirlockError);
  const err = caught as AirlockError;
  expect(err.code, err.message).toBe(code);
  if (message) expect(err.message).toMatch(message);
  return err;
}

export { keyIdOf };
