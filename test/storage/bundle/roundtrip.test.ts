import { readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exportBundle, importBundle } from '../../../storage/bundle/index.js';
import { openStore, type Store } from '../../../storage/index.js';
import { readTar } from './tarlib.js';
import {
  newRootKey,
  openFilled,
  releaseKey,
  root1Bytes,
  rootKey,
  rootPayload,
  sampleRelease,
  sha,
  signRelease,
  signRoot,
  snapshot,
  tmp,
  gate,
  trusted,
  fill,
} from './fixtures.js';
import { generateKey } from '../../../manifests/index.js';

let dir: string;
const stores: Store[] = [];
beforeEach(async () => {
  dir = await tmp();
});
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});
const open = async (name: string): Promise<Store> => {
  const s = await openStore({ cacheDir: join(dir, name), write: true });
  stores.push(s);
  return s;
};

describe('bundle export → import', () => {
  it('carries a release into an empty cache: fixed order, status ready, every blob verified', async () => {
    const r = sampleRelease();
    const src = await openFilled(join(dir, 'src'), r.envelope, r.blobs);
    stores.push(src);
    const out = join(dir, 'b.tar');
    const ex = await exportBundle(src, '3.6.2', { out, roots: [root1Bytes] });
    expect(ex).toMatchObject({ release: '3.6.2', serial: 17, blobs: 6, roots: [1] });
    expect(ex.volumes).toHaveLength(1);

    const items = await readTar(out);
    expect(items.map((i) => i.header.name)).toEqual([
      'airlock-bundle.json',
      'root/1.json',
      'manifest.json',
      ...r.blobs.map((b) => `blobs/sha256/${b.sha256}`),
    ]);
    expect(items[2]!.body.equals(r.envelope)).toBe(true);
    expect((await readFile(`${out}.sha256`, 'utf8')).trim()).toBe(`${sha(await readFile(out))}  b.tar`);

    const dst = await open('dst');
    const progress: number[] = [];
    const im = await importBundle(dst, [out], { gate: gate(), onProgress: (p) => progress.push(p.bytes) });
    expect(im.blobs).toEqual({ total: 6, imported: 6, skipped: 0 });
    expect(progress.at(-1)).toBe(im.bytes.total);
    expect((await dst.status('3.6.2')).ready).toBe(true);
    expect((await dst.getRelease('3.6.2'))!.envelope.equals(r.envelope)).toBe(true);
    const snap = await snapshot(dst);
    expect(snap.corrupt).toEqual([]);
    expect(snap.blobs).toEqual(r.blobs.map((b) => b.sha256).sort());

    // again: everything already there is read past, nothing re-written
    const again = await importBundle(dst, [out], { gate: gate() });
    expect(again.blobs).toEqual({ total: 6, imported: 0, skipped: 6 });
  });

  it('splits into volumes with sha256sum files, and imports them (by base name or listed)', async () => {
    const r = sampleRelease('3.6.2', 17, { file: 200_000, layer: 3_000_000 });
    const src = await openFilled(join(dir, 'src'), r.envelope, r.blobs);
    stores.push(src);
    const out = join(dir, 'vol.tar');
    const ex = await exportBundle(src, '3.6.2', { out, split: 1024 * 1024, roots: [root1Bytes] });
    expect(ex.volumes.length).toBeGreaterThan(3);
    const names = (await readdir(dir)).filter((n) => n.startsWith('vol.tar')).sort();
    expect(names).toContain('vol.tar.000');
    expect(names).toContain('vol.tar.000.sha256');
    expect(names).not.toContain('vol.tar');
    for (const v of ex.volumes) {
      expect((await stat(v.path)).size).toBeLessThanOrEqual(1024 * 1024);
      expect(await readFile(`${v.path}.sha256`, 'utf8')).toBe(`${sha(await readFile(v.path))}  ${v.path.split('/').pop()}\n`);
    }
    const a = await open('a');
    expect((await importBundle(a, [out], { gate: gate() })).volumes).toHaveLength(ex.volumes.length);
    expect((await a.status('3.6.2')).ready).toBe(true);
    const b = await open('b');
    await importBundle(b, ex.volumes.map((v) => v.path), { gate: gate() });
    expect((await b.status('3.6.2')).ready).toBe(true);
  });

  it('a volume whose .sha256 does not match is refused and the release is not stored', async () => {
    const r = sampleRelease('3.6.2', 17, { file: 200_000, layer: 3_000_000 });
    const src = await openFilled(join(dir, 'src'), r.envelope, r.blobs);
    stores.push(src);
    const out = join(dir, 'vol.tar');
    const ex = await exportBundle(src, '3.6.2', { out, split: 1024 * 1024 });
    await writeFile(`${ex.volumes[1]!.path}.sha256`, `${'0'.repeat(64)}  vol.tar.001\n`);
    const dst = await open('dst');
    await expect(importBundle(dst, [out], { gate: gate(), checkVolumes: true })).rejects.toMatchObject({ code: 'EINTEGRITY' });
    expect((await snapshot(dst)).releases).toEqual([]);
    expect((await snapshot(dst)).corrupt).toEqual([]);
    // without checkVolumes the .sha256 files are not read: every blob is still verified against the signed manifest
    const plain = await open('plain');
    await importBundle(plain, [out], { gate: gate() });
    expect((await plain.status('3.6.2')).ready).toBe(true);
  });

  it('imports into a backend without put (its writer stream only), byte for byte', async () => {
    const r = sampleRelease('3.6.2', 17, { file: 200_000, layer: 3_000_000 });
    const src = await openFilled(join(dir, 'src'), r.envelope, r.blobs);
    stores.push(src);
    const out = join(dir, 'plain.tar');
    await exportBundle(src, '3.6.2', { out });
    const { fsBackend } = await import('../../../storage/index.js');
    const fs = fsBackend(join(dir, 'noput'));
    const backend = {
      ...fs,
      writer: async (e: { sha256: string; size: number }) => {
        const w = await fs.writer(e);
        return { stream: w.stream, commit: () => w.commit(), cancel: () => w.cancel() };
      },
    };
    const dst = await openStore({ cacheDir: join(dir, 'noput'), write: true, backend });
    stores.push(dst);
    const im = await importBundle(dst, [out], { gate: gate() });
    expect(im.blobs.imported).toBe(r.blobs.length);
    expect((await dst.status('3.6.2')).ready).toBe(true);
    for (const b of r.blobs) expect(sha(await readFile(join(dir, 'noput', 'blobs', 'sha256', b.sha256.slice(0, 2), b.sha256)))).toBe(b.sha256);
  });

  it('follows a rotated root chain from the local root (root/2.json signed by v1 and v2)', async () => {
    const newRelease = generateKey();
    const root2 = signRoot(rootPayload(2, [newRootKey], [newRelease]), [rootKey, newRootKey]);
    const r = sampleRelease();
    const envelope = signRelease({ release: r.release, serial: r.serial, artifacts: r.artifacts }, newRelease);
    // the exporting node trusts v2 already; it keeps its blobs and the envelope (filled under v2)
    const src = await open('src');
    const { loadTrustedRoot, updateTrustedRoot, verifyRelease } = await import('../../../manifests/index.js');
    const v2 = updateTrustedRoot(loadTrustedRoot(root1Bytes, new Date()), [root2], new Date());
    for (const b of r.blobs) await src.ingestStream({ sha256: b.sha256, size: b.size }, (await import('node:stream')).Readable.from([b.bytes]));
    await src.putRelease(verifyRelease(envelope, { root: v2, now: new Date() }));
    const out = join(dir, 'b.tar');
    await exportBundle(src, r.release, { out, roots: [root2, root1Bytes] });
    const dst = await open('dst');
    const im = await importBundle(dst, [out], { gate: gate() });
    expect(im.rootVersion).toBe(2);
    expect((await dst.status(r.release)).ready).toBe(true);
  });

  it('refuses to export an incomplete release (ENOTFOUND, nothing written)', async () => {
    const r = sampleRelease();
    const src = await open('src');
    await fill(src, r.envelope, r.blobs.slice(0, 3));
    const out = join(dir, 'x.tar');
    await expect(exportBundle(src, '3.6.2', { out })).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(exportBundle(src, 'nope', { out })).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect((await readdir(dir)).filter((n) => n.startsWith('x.tar'))).toEqual([]);
  });

  void releaseKey;
});
