/**
 * A store holding one staged release of REAL things: the world's .debs
 * (apt-get download, cached by scripts/setup.sh), an OCI image built with
 * umoci, a small component tarball, a random 8 MiB file, all signed and
 * verified (manifests/) and ingested with `ingestStream` + `putRelease`.
 */
import { createReadStream, readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTrustedRoot, verifyRelease, type VerifiedRelease } from '../../../manifests/index.js';
import type { Artifact, ReleaseManifest } from '../../../manifests/index.js';
import { openStore, type Store } from '../../../storage/index.js';
import { makeTrust, signRelease } from '../../../scripts/world/keys.js';
import { builtOciLayout, cachedDebs, sha256File, writeAppTarball, writeRandomFile } from '../../../scripts/world/fixtures.js';

export const IMAGE = 'registry.upstream.test:5000/demo/app:1.0';
export const FILE_URL = 'http://files.upstream.test/3.6.2/app.tgz';
export const BIG_URL = 'http://files.upstream.test/3.6.2/big.bin';

export interface Fixture {
  dir: string;
  store: Store;
  release: string;
  verified: VerifiedRelease;
  /** manifest path → local file with the same bytes */
  local: Map<string, string>;
  /** every blob digest → local file */
  blobFiles: Map<string, string>;
  ociLayout: string;
  imageDigest: string;
  manifest: ReleaseManifest;
}

export const openTestStore = (cacheDir: string): Promise<Store> => openStore({ cacheDir, write: true });

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export async function makeFixture(opts: { release?: string; bigSize?: number } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-serve-'));
  const release = opts.release ?? '3.6.2';
  const trust = makeTrust(join(dir, 'keys'));
  const local = new Map<string, string>();
  const blobFiles = new Map<string, string>();
  const artifacts: Artifact[] = [];

  await writeAppTarball(join(dir, 'work'), join(dir, 'app.tgz'));
  const app = await sha256File(join(dir, 'app.tgz'));
  artifacts.push({ path: 'components/app.tgz', kind: 'file', ...app, urls: [FILE_URL] });
  local.set('components/app.tgz', join(dir, 'app.tgz'));
  const big = await writeRandomFile(join(dir, 'big.bin'), opts.bigSize ?? 8 * 1024 * 1024);
  artifacts.push({ path: 'components/big.bin', kind: 'file', ...big, urls: [BIG_URL] });
  local.set('components/big.bin', join(dir, 'big.bin'));

  for (const d of cachedDebs().debs) {
    const path = `debs/${d.filename.split('/').pop()!}`;
    artifacts.push({
      path, kind: 'deb', sha256: d.sha256, size: d.size, package: d.package, version: d.version, arch: d.arch,
      urls: [`http://debs.upstream.test/${d.filename}`],
    });
    local.set(path, d.file);
  }

  const layout = await builtOciLayout();
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] };
  const top = index.manifests[0]!;
  const blobPath = (digest: string): string => join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const manifest = JSON.parse(readFileSync(blobPath(top.digest), 'utf8')) as { config: OciDescriptor; layers: OciDescriptor[] };
  const imageDigest = top.digest.slice('sha256:'.length);
  artifacts.push({
    path: 'images/demo/app', kind: 'oci-image', sha256: imageDigest, size: top.size, image: IMAGE, mediaType: top.mediaType,
    blobs: [manifest.config, ...manifest.layers].map((b) => ({ sha256: b.digest.slice(7), size: b.size })),
  });
  local.set('images/demo/app', blobPath(top.digest));
  for (const b of [top, manifest.config, ...manifest.layers]) blobFiles.set(b.digest.slice(7), blobPath(b.digest));
  for (const a of artifacts) if (a.kind !== 'oci-image') blobFiles.set(a.sha256, local.get(a.path)!);

  const now = new Date();
  const payload: ReleaseManifest = {
    type: 'airlock-release', spec: 1, product: 'stackato', release, serial: 17,
    issued: new Date(now.getTime() - 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    expires: new Date(now.getTime() + 30 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    artifacts,
  };
  const envelope = signRelease(payload, trust);
  const root = loadTrustedRoot(await readFile(trust.rootJsonPath), now);
  const verified = verifyRelease(envelope, { root, now });

  const store = await openTestStore(join(dir, 'cache'));
  for (const [sha256, file] of blobFiles) {
    const size = (await sha256File(file)).size;
    await store.ingestStream({ sha256, size }, createReadStream(file));
  }
  await store.putRelease(verified);
  return { dir, store, release, verified, local, blobFiles, ociLayout: layout, imageDigest, manifest: payload };
}
