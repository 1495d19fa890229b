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

describe('status of a big release (its outline streamed against one listing)', () => {
  it('gives the same answer as the in-memory status: shared blobs once, every path of a missing one, images whole or not', async () => {
    const { openStore } = await import('../../storage/index.js');
    const dir = await tmp();
    const artifacts: Artifact[] = [];
    for (let i = 0; i < 4000; i++) {
      // every 7th reuses the body of the one before it (a shared blob under two paths)
      const body = `body-${i % 7 === 0 && i > 0 ? i - 1 : i}`;
      if (i % 500 === 0) {
        artifacts.push({
          path: `images/${i}`, kind: 'oci-image', sha256: sha(`m${i}`), size: `m${i}`.length, image: `r.example/x:${i}`,
          blobs: [{ sha256: sha(`c${i}`), size: `c${i}`.length }, { sha256: sha(body), size: body.length }],
        });
      } else artifacts.push(fileArtifact(`files/${i}.bin`, body));
    }
    const store = await openStore({ cacheDir: dir, write: true });
    await store.putRelease(makeRelease('big', artifacts));
    const bodies = new Set<string>();
    for (let i = 0; i < 4000; i += 3) bodies.add(`body-${i}`);
    for (let i = 0; i < 4000; i += 1000) bodies.add(`m${i}`).add(`c${i}`);
    for (const b of bodies) await store.ingestStream({ sha256: sha(b), size: b.length }, Readable.from([Buffer.from(b)]));
    const streamed = await store.status('big');
    const whole = await releaseStatus({ product: 'stackato', release: 'big', serial: 1, artifacts }, fsBackend(dir));
    expect(streamed).toEqual(whole);
    expect(streamed.missing.some((m) => m.paths.length > 1)).toBe(true);
    expect(streamed.ready).toBe(false);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
});
