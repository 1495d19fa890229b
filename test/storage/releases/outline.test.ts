import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readOutline, writeOutline } from '../../../storage/releases/outline.js';
import { writeEnvelopeFile } from '../../../storage/releases/envelopes.js';
import { outlinePath } from '../../../storage/paths.js';
import type { StoredRelease } from '../../../storage/types.js';
import type { ReleaseManifest } from '../../../manifests/types.js';

const hex = (c: string): string => c.repeat(64);

function stored(): StoredRelease {
  const manifest: ReleaseManifest = {
    type: 'airlock-release',
    spec: 1,
    product: 'demo',
    release: '1.0',
    serial: 3,
    issued: '2026-01-01T00:00:00Z',
    expires: '2027-01-01T00:00:00Z',
    artifacts: [
      { path: 'files/a b.tgz', kind: 'file', sha256: hex('a'), size: 10, urls: ['http://x/a'] },
      { path: 'images/app', kind: 'oci-image', sha256: hex('b'), size: 20, image: 'r.example/app:1', blobs: [{ sha256: hex('c'), size: 30 }, { sha256: hex('d'), size: 40 }] },
      { path: 'gems/"q".gem', kind: 'gem', sha256: hex('e'), size: 50, urls: ['http://x/q'], gem: 'q', version: '1' },
    ],
  };
  return { product: 'demo', release: '1.0', serial: 3, digest: hex('f'), envelope: Buffer.from('{"envelope":"bytes"}'), manifest };
}

describe('release outline', () => {
  it('round-trips what status needs, image blobs included', async () => {
    const root = mkdtempSync(join(tmpdir(), 'airlock-outline-'));
    const s = stored();
    await writeEnvelopeFile(root, '1.0', s.envelope);
    await writeOutline(root, s);
    expect(await readOutline(root, '1.0')).toEqual({
      product: 'demo',
      release: '1.0',
      serial: 3,
      artifacts: [
        { path: 'files/a b.tgz', sha256: hex('a'), size: 10, blobs: [] },
        { path: 'images/app', sha256: hex('b'), size: 20, blobs: [{ sha256: hex('c'), size: 30 }, { sha256: hex('d'), size: 40 }] },
        { path: 'gems/"q".gem', sha256: hex('e'), size: 50, blobs: [] },
      ],
    });
  });

  it('is ignored when the envelope changed, is missing, or the outline is damaged', async () => {
    const root = mkdtempSync(join(tmpdir(), 'airlock-outline-'));
    const s = stored();
    expect(await readOutline(root, '1.0')).toBeNull();
    await writeEnvelopeFile(root, '1.0', s.envelope);
    await writeOutline(root, s);
    await writeEnvelopeFile(root, '1.0', Buffer.from('{"another":"envelope"}'));
    expect(await readOutline(root, '1.0')).toBeNull();
    await writeEnvelopeFile(root, '1.0', s.envelope);
    expect(await readOutline(root, '1.0')).not.toBeNull();
    const file = outlinePath(root, '1.0');
    writeFileSync(file, readFileSync(file, 'utf8').replace('airlock-outline 1', 'airlock-outline 9'));
    expect(await readOutline(root, '1.0')).toBeNull();
    writeFileSync(file, 'airlock-outline 1\n{not json\n');
    expect(await readOutline(root, '1.0')).toBeNull();
  });
});
