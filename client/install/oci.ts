/**
 * `oci-image` artifacts: `docker load` where a Docker engine answers
 * (`docker info` succeeds); otherwise an OCI image layout under the root,
 * `ROOT/var/lib/airlock/images/<registry>/<repo>`, that `skopeo inspect
 * oci:DIR:TAG` and container runtimes read; or the config's `oci-image`
 * command (e.g. `ctr images import {archive}` for containerd). Always by digest: the signed
 * manifest pins the image manifest and every blob; the tag is only a name.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, rename, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { AirlockError } from '../../manifests/errors.js';
import { assertSafePath } from '../../manifests/index.js';
import type { OciImageArtifact } from '../../manifests/types.js';
import { workDir } from '../state.js';
import type { InstallContext, StepOutcome } from './context.js';
import { commandSucceeds, runCommand } from './exec.js';
import { createNew, Fence, openNoFollow, tempIn, writeFileAt } from './fence.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

/** `host:5000/a/b:1.0` → { repo: 'host:5000/a/b', tag: '1.0' }; a digest-only reference is tagged `latest`. */
export function splitImageRef(image: string): { repo: string; tag: string } {
  const at = image.indexOf('@');
  const named = at >= 0 ? image.slice(0, at) : image;
  const slash = named.lastIndexOf('/');
  const colon = named.lastIndexOf(':');
  if (colon > slash) return { repo: named.slice(0, colon), tag: named.slice(colon + 1) };
  return { repo: named, tag: 'latest' };
}

export function layoutDir(root: string, image: string, where: string): string {
  const rel = splitImageRef(image).repo.replace(/:/g, '_');
  assertSafePath(rel, `${where}: image name`);
  return join(root, 'var', 'lib', 'airlock', 'images', ...rel.split('/'));
}

interface IndexJson {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
}

async function manifestMediaType(ctx: InstallContext, a: OciImageArtifact): Promise<string> {
  if (a.mediaType) return a.mediaType;
  const chunks: Buffer[] = [];
  for await (const c of await ctx.source.read(a.sha256)) chunks.push(c as Buffer);
  try {
    const m = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { mediaType?: unknown };
    return typeof m.mediaType === 'string' ? m.mediaType : OCI_MANIFEST;
  } catch {
    throw new AirlockError('EINTEGRITY', `${a.path}: the image manifest is not JSON`, { path: a.path });
  }
}

/**
 * Writes (or adds to) an OCI image layout at `dir`, every name resolved
 * inside `fence`; blobs already there as files of the right size are kept.
 */
export async function writeLayout(ctx: InstallContext, a: OciImageArtifact, dir: string, fence: Fence): Promise<{ tag: string; digest: string }> {
  const { real: layout } = await fence.mkdir(dir, a.path);
  const { real: blobsDir } = await fence.mkdir(join(layout, 'blobs', 'sha256'), a.path);
  for (const b of [...a.blobs, { sha256: a.sha256, size: a.size }]) {
    const dest = join(blobsDir, b.sha256);
    const st = await lstat(dest).catch(() => null);
    if (st?.isFile() && st.size === b.size) continue;
    if (st?.isDirectory()) throw new AirlockError('EPATH', `${a.path}: "${dest}" is a folder, not a blob`, { path: a.path, dest });
    const tmp = tempIn(blobsDir, b.sha256);
    try {
      const hash = createHash('sha256');
      const fh = await createNew(tmp, 0o644);
      try {
        for await (const c of await ctx.source.read(b.sha256)) {
          hash.update(c as Buffer);
          await fh.write(c as Buffer);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (hash.digest('hex') !== b.sha256) {
        throw new AirlockError('EINTEGRITY', `${a.path}: staged blob sha256:${b.sha256} changed on disk`, { path: a.path, sha256: b.sha256 });
      }
      await rename(tmp, dest); // a link planted at the name is replaced, not followed
    } finally {
      await rm(tmp, { force: true });
    }
  }
  await writeFileAt(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}\n');
  const { tag } = splitImageRef(a.image);
  const indexPath = join(layout, 'index.json');
  let index: IndexJson = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
  try {
    // never read through a link: a planted one starts a fresh index
    const fh = await openNoFollow(indexPath);
    try {
      index = JSON.parse(await fh.readFile('utf8')) as IndexJson;
    } finally {
      await fh.close();
    }
  } catch {
    // no layout here yet
  }
  index.manifests = (Array.isArray(index.manifests) ? index.manifests : []).filter((m) => m.annotations?.[REF_NAME] !== tag);
  index.manifests.push({
    mediaType: await manifestMediaType(ctx, a),
    digest: `sha256:${a.sha256}`,
    size: a.size,
    // the second name is what `docker load` uses to tag an OCI archive
    annotations: { [REF_NAME]: tag, 'io.containerd.image.name': a.image },
  });
  await writeFileAt(indexPath, `${JSON.stringify(index)}\n`);
  return { tag, digest: `sha256:${a.sha256}` };
}

/**
 * The `oci-image` override: `{layout}`, `{archive}`, `{image}` and `{digest}`
 * in its words are replaced (`{archive}`: the layout as one tar file, e.g. for
 * `ctr images import`); a command with none of them gets `LAYOUT_DIR IMAGE`
 * appended, as before.
 */
export function imageCommand(template: readonly string[], v: { layout: string; archive: string; image: string; digest: string }): { argv: string[]; archive: boolean } {
  const known = /\{(layout|archive|image|digest)\}/g;
  if (!template.some((w) => /\{(layout|archive|image|digest)\}/.test(w))) return { argv: [...template, v.layout, v.image], archive: false };
  const argv = template.map((w) => w.replace(known, (_, k: keyof typeof v) => v[k]));
  return { argv, archive: template.some((w) => w.includes('{archive}')) };
}

export async function installImage(ctx: InstallContext, a: OciImageArtifact, dockerAnswers: () => Promise<boolean>): Promise<StepOutcome> {
  const override = ctx.commands['oci-image'];
  if (override || (await dockerAnswers())) {
    // a throwaway layout in the work dir, tarred into `docker load` (or given to the override)
    const dir = join(ctx.state.work, `oci-${a.sha256.slice(0, 16)}`);
    const archive = `${dir}.tar`;
    await rm(dir, { recursive: true, force: true });
    await rm(archive, { force: true });
    try {
      await writeLayout(ctx, a, dir, await Fence.of(await workDir(ctx.state)));
      if (override) {
        const cmd = imageCommand(override, { layout: dir, archive, image: a.image, digest: `sha256:${a.sha256}` });
        if (cmd.archive) await pipeline(await imageArchive(dir, a), await createNew(archive, 0o600).then((fh) => fh.createWriteStream()));
        await runCommand(cmd.argv, { where: a.path });
        return { note: `image ${a.image} installed by ${override[0]}` };
      }
      await runCommand(['docker', 'load'], { where: a.path, input: await imageArchive(dir, a) });
      return { note: `image ${a.image} loaded into Docker` };
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(archive, { force: true });
    }
  }
  const dir = layoutDir(ctx.root, a.image, a.path);
  const { tag } = await writeLayout(ctx, a, dir, await Fence.of(ctx.root));
  return { note: `image ${a.image} written as OCI layout ${dir}:${tag}` };
}

/**
 * The `manifest.json` of a `docker save` archive for the layout's image:
 * Docker engines before 25 load only that format, later ones and containerd
 * read the OCI layout beside it (what `docker save` itself writes since 25).
 */
async function dockerArchiveManifest(dir: string, a: OciImageArtifact): Promise<Buffer> {
  let m: { config?: { digest?: unknown }; layers?: Array<{ digest?: unknown }> };
  try {
    m = JSON.parse(await readFile(join(dir, 'blobs', 'sha256', a.sha256), 'utf8')) as typeof m;
  } catch {
    throw new AirlockError('EINTEGRITY', `${a.path}: the image manifest is not JSON`, { path: a.path });
  }
  const blob = (d: unknown): string => {
    if (typeof d !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(d)) {
      throw new AirlockError('EINTEGRITY', `${a.path}: the image manifest names a blob "${String(d)}" that is not a sha256 digest`, { path: a.path });
    }
    return `blobs/sha256/${d.slice(7)}`;
  };
  const { repo, tag } = splitImageRef(a.image);
  return Buffer.from(
    JSON.stringify([{ Config: blob(m.config?.digest), RepoTags: [`${repo}:${tag}`], Layers: (m.layers ?? []).map((l) => blob(l.digest)) }]),
  );
}

/** The layout folder as one tar stream: an OCI archive that is also a `docker save` archive. */
async function imageArchive(dir: string, a: OciImageArtifact): Promise<Readable> {
  const manifestJson = await dockerArchiveManifest(dir, a);
  const p = pack();
  const add = async (): Promise<void> => {
    const files = ['oci-layout', 'index.json', ...(await readdir(join(dir, 'blobs', 'sha256'))).map((f) => `blobs/sha256/${f}`)];
    for (const f of files) {
      const body = await readFile(join(dir, f));
      await new Promise<void>((res, rej) => p.entry({ name: f, mode: 0o644 }, body, (e) => (e ? rej(e) : res())));
    }
    await new Promise<void>((res, rej) => p.entry({ name: 'manifest.json', mode: 0o644 }, manifestJson, (e) => (e ? rej(e) : res())));
    p.finalize();
  };
  add().catch((e: Error) => p.destroy(e));
  return p as unknown as Readable;
}

let dockerCache: Promise<boolean> | null = null;
/** Asked once per run. */
export const dockerEngineAnswers = (): Promise<boolean> => (dockerCache ??= commandSucceeds(['docker', 'info']));
