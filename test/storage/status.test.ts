import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { fsBackend } from '../../storage/backend/fs.js';
import { mapLimit, presentSet, releaseStatus } from '../../storage/status.js';
import type { StoredRelease } from '../../storage/types.js';
import type { Artifact } from '../../manifests/types.js';
import { pipeline } from 'node:stream/promises';
import { fileArtifact, makeRelease, sha, tmp } from './fixtures.js';

async function put(dir: string, body: string): Promise<void> {
  const w = await fsBackend(dir).writer({ sha256: sha(body), size: body.length });
  await pipeline(Readable.from([Buffer.from(body)]), w.stream);
  await w.commit();
}

const stored = (artifacts: Artifact[]): StoredRelease => {
  const v = makeRelease('r1', artifacts);
  return { product: 'p', release: 'r1', serial: 1, envelope: v.envelope, digest: v.digest, manifest: v.manifest };
};

describe('status', () => {
  it('an image is present only with its manifest and every layer; shared blobs count once', async () => {
    const dir = await tmp();
    const image: Artifact = {
      path: 'images/x', kind: 'oci-image', sha256: sha('manifest'), size: 8, image: 'r.example/x:1',
      blobs: [{ sha256: sha('config'), size: 6 }, { sha256: sha('layer'), size: 5 }],
    };
    const s = stored([fileArtifact('a', 'layer'), image]);
    await put(dir, 'manifest');
    await put(dir, 'layer');
    const st = await releaseStatus({ ...s, artifacts: s.manifest.artifacts }, fsBackend(dir));
    expect(st.files).toEqual({ total: 2, present: 1, missing: 1 });
    expect(st.bytes).toEqual({ total: 19, present: 13, missing: 6 });
    expect(st.missing).toEqual([{ sha256: sha('config'), size: 6, paths: ['images/x'] }]);
    await rm(dir, { recursive: true, force: true });
  });

  it('presentSet agrees between the stat path and the listing path', async () => {
    const dir = await tmp();
    const bodies = Array.from({ length: 2100 }, (_, i) => `b${i}`);
    await mapLimit(bodies.filter((_, i) => i % 30 === 0), 16, (b) => put(dir, b));
    const digests = bodies.map(sha);
    const big = await presentSet(fsBackend(dir), digests); // > threshold: listing
    const small = await presentSet(fsBackend(dir), digests.slice(0, 1500)); // stats
    expect(big.size).toBe(70);
    expect([...small].every((d) => big.has(d))).toBe(true);
    expect(small.size).toBe(50);
    await rm(dir, { recursive: true, force: true });
  });
});
