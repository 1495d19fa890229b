import { describe, expect, it } from 'vitest';
import { releaseBlobs } from '../../manifests/blobs.js';
import { validateReleaseManifest } from '../../manifests/schema.js';
import { HEX, manifest } from './fixtures.js';

describe('releaseBlobs', () => {
  it('lists every artifact and image blob once, in manifest order, with the paths needing each', () => {
    const m = manifest() as { artifacts: Array<Record<string, unknown>> };
    m.artifacts.push({
      path: 'images/stackato/api',
      kind: 'oci-image',
      sha256: HEX('1'),
      size: 10,
      image: 'docker.example.com/stackato/api:3.6.2',
      blobs: [{ sha256: HEX('f'), size: 31457280 }, { sha256: HEX('2'), size: 5 }],
    });
    const blobs = releaseBlobs(validateReleaseManifest(m));
    expect(blobs.map((b) => b.sha256[0])).toEqual(['a', 'b', 'c', 'd', 'e', 'f', '1', '2']);
    expect(blobs.find((b) => b.sha256 === HEX('f'))).toEqual({
      sha256: HEX('f'),
      size: 31457280,
      paths: ['images/stackato/router', 'images/stackato/api'],
    });
  });
});
