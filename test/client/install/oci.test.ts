import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { installFile } from '../../../client/install/file.js';
import { imageCommand, installImage, layoutDir } from '../../../client/install/oci.js';
import { isAirlockError } from '../../../manifests/errors.js';
import type { FileArtifact, OciImageArtifact } from '../../../manifests/types.js';
import { context, failure, makeTar, sandbox } from './hostile.js';

const noDocker = async (): Promise<boolean> => false;

/** A tiny but well-formed image: a config, one empty layer, the manifest. */
function image(ctx: ReturnType<typeof context>, name = 'registry.example:5000/demo/app:1.0'): OciImageArtifact {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
  const layer = Buffer.alloc(1024); // an empty tar: two zero blocks
  const blobs = [config, layer].map((b) => ({ sha256: ctx.add(b), size: b.length }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${blobs[0]!.sha256}`, size: blobs[0]!.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${blobs[1]!.sha256}`, size: blobs[1]!.size }],
    }),
  );
  return { kind: 'oci-image', path: 'images/app', image: name, sha256: ctx.add(manifest), size: manifest.length, blobs };
}

describe('installImage (OCI layout under the root)', () => {
  it('writes a layout skopeo reads', async () => {
    const { root, state } = sandbox('oci');
    const ctx = context(root, state);
    const a = image(ctx);
    await installImage(ctx, a, noDocker);
    const dir = layoutDir(root, a.image, a.path);
    const out = execFileSync('skopeo', ['inspect', `oci:${dir}:1.0`], { encoding: 'utf8' });
    expect(JSON.parse(out).Architecture).toBe('amd64');
  });

  it('a component tarball planting `a -> .` and `a/var -> ../escaped` cannot make the image step write outside the root', async () => {
    const { root, state, outside } = sandbox('oci');
    const ctx = context(root, state);
    const tar = await makeTar([
      { name: 'a', type: 'symlink', linkname: '.' },
      { name: 'a/var', type: 'symlink', linkname: '../escaped' },
    ]);
    const component: FileArtifact = { kind: 'file', path: 'components/evil.tar', urls: [], sha256: ctx.add(tar), size: tar.length, install: { extract: '/' } };
    const a = image(ctx);
    const steps = [await failure(installFile(ctx, component)), await failure(installImage(ctx, a, noDocker))];
    expect(outside()).toEqual([]);
    expect(steps.some((e) => isAirlockError(e, 'EPATH'))).toBe(true);
  });

  for (const [label, plant] of [
    ['ROOT/var -> ../escaped', (root: string) => symlinkSync('../escaped', join(root, 'var'))],
    ['ROOT/var/lib/airlock -> absolute escaped', (root: string) => {
      mkdirSync(join(root, 'var', 'lib'), { recursive: true });
      symlinkSync(join(root, '..', 'escaped'), join(root, 'var', 'lib', 'airlock'));
    }],
    ['the layout folder itself -> escaped', (root: string) => {
      mkdirSync(join(root, 'var', 'lib', 'airlock', 'images', 'registry.example_5000', 'demo'), { recursive: true });
      symlinkSync('../../../../../../../escaped', join(root, 'var', 'lib', 'airlock', 'images', 'registry.example_5000', 'demo', 'app'));
    }],
  ] as Array<[string, (root: string) => void]>) {
    it(`refuses with EPATH when ${label}, writing nothing outside`, async () => {
      const { root, state, outside } = sandbox('oci');
      plant(root);
      const ctx = context(root, state);
      const err = await failure(installImage(ctx, image(ctx), noDocker));
      expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
      expect((err as Error).message).not.toMatch(/\n/);
      expect(outside()).toEqual([]);
    });
  }

  it('does not follow a planted link at a blob, index.json or oci-layout in the layout', async () => {
    const { root, state, outside, escaped } = sandbox('oci');
    const ctx = context(root, state);
    const a = image(ctx);
    const dir = layoutDir(root, a.image, a.path);
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    for (const f of ['index.json', 'oci-layout', `blobs/sha256/${a.blobs[0]!.sha256}`, `blobs/sha256/${a.blobs[0]!.sha256}.${process.pid}.tmp`]) {
      symlinkSync(join(escaped, f.replace(/\//g, '_')), join(dir, f));
    }
    const err = await failure(installImage(ctx, a, noDocker));
    if (!isAirlockError(err, 'EPATH')) {
      // replacing the links is as good as refusing: what matters is nothing lands outside
      expect(readdirSync(join(dir, 'blobs', 'sha256')).length).toBeGreaterThanOrEqual(3);
    }
    expect(outside()).toEqual([]);
  });
});

describe('imageCommand (the installers.oci-image override)', () => {
  const v = { layout: '/w/oci-1', archive: '/w/oci-1.tar', image: 'reg:5000/a/b:1.0', digest: 'sha256:abc' };
  it('without placeholders, appends LAYOUT_DIR IMAGE as before', () => {
    expect(imageCommand(['site-load', '--quiet'], v)).toEqual({ argv: ['site-load', '--quiet', '/w/oci-1', 'reg:5000/a/b:1.0'], archive: false });
  });
  it('replaces {archive} {layout} {image} {digest} inside words, appends nothing, and asks for the archive only when named', () => {
    expect(imageCommand(['ctr', 'images', 'import', '--index-name={image}', '{archive}'], v)).toEqual({
      argv: ['ctr', 'images', 'import', '--index-name=reg:5000/a/b:1.0', '/w/oci-1.tar'],
      archive: true,
    });
    expect(imageCommand(['check', '{layout}', '{digest}', '{other}'], v)).toEqual({ argv: ['check', '/w/oci-1', 'sha256:abc', '{other}'], archive: false });
  });
});
