/**
 * The read-only OCI distribution API under `/v2/`. Repositories, tags,
 * manifests and blobs come from the catalog only: a digest the store holds
 * but no staged image lists is BLOB_UNKNOWN here. Manifests are served as
 * staged (by digest, never re-resolved), with the media type the upstream
 * gave them; no format conversion.
 */
import type { Context } from 'koa';
import { CACHE_ROUTES } from '../../../common/cache-api.js';
import { AirlockError } from '../../../manifests/errors.js';
import type { OciImageArtifact } from '../../../manifests/types.js';
import { findRepository, repositoryNames, type Repository } from '../catalog.js';
import { routeTo, type ServeEnv, type ServeRouter } from '../env.js';
import { REPOSITORY_NAME, TAG_NAME } from '../../../manifests/image-ref.js';
import { sendBlob } from '../send-blob.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MAX_MANIFEST = 4 * 1024 * 1024;

const unknown = (oci: string, message: string, detail: Record<string, unknown>): AirlockError =>
  new AirlockError('ENOTFOUND', message, { ...detail, oci });

/** containerd's mirror parameter: the upstream registry host the client means (`?ns=quay.io`), or null. */
function namespaceOf(ctx: Context): string | null {
  const ns = ctx.query.ns;
  const v = Array.isArray(ns) ? ns[0] : ns;
  if (v === undefined || v === '') return null;
  if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$/.test(v)) {
    throw new AirlockError('EPATH', `ns "${v.slice(0, 80)}" is not a registry host[:port]`, { oci: 'NAME_INVALID' });
  }
  return v;
}

async function repository(env: ServeEnv, ctx: Context, raw: string): Promise<Repository> {
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    name = raw;
  }
  if (!REPOSITORY_NAME.test(name)) {
    throw new AirlockError('EPATH', `repository name "${name.slice(0, 80)}" is invalid`, { oci: 'NAME_INVALID' });
  }
  const ns = namespaceOf(ctx);
  const { repo, choices } = findRepository(await env.catalog.get(), name, ns);
  if (repo) return repo;
  if (choices.length === 0) throw unknown('NAME_UNKNOWN', `repository ${name} is not in any staged release`, { name });
  if (ns !== null) {
    throw unknown('NAME_UNKNOWN', `repository ${name} of registry ${ns} is not in any staged release (staged from: ${choices.join(', ')})`, {
      name,
      ns,
      registries: choices,
    });
  }
  throw unknown(
    'NAME_UNKNOWN',
    `repository ${name} is staged from several registries (${choices.join(', ')}): name one with ?ns=HOST`,
    { name, registries: choices },
  );
}

/**
 * The distribution spec's pagination: names after `last`, at most `n`, and
 * a `Link: <…?last=X&n=N>; rel="next"` header while more remain.
 */
function paginate(ctx: Context, all: readonly string[], path: string): string[] {
  const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
  const nText = one(ctx.query.n);
  const last = one(ctx.query.last);
  let n: number | null = null;
  if (nText !== undefined) {
    if (!/^\d{1,9}$/.test(nText)) {
      throw new AirlockError('EUSAGE', `n must be a non-negative integer, got "${nText.slice(0, 20)}"`, { oci: 'PAGINATION_NUMBER_INVALID' });
    }
    n = Number(nText);
  }
  const after = last === undefined || last === '' ? all : all.filter((x) => x > last);
  if (n === null) return [...after];
  const page = after.slice(0, n);
  if (page.length > 0 && after.length > page.length) {
    const ns = namespaceOf(ctx);
    const q = `last=${encodeURIComponent(page[page.length - 1]!)}&n=${n}${ns ? `&ns=${encodeURIComponent(ns)}` : ''}`;
    ctx.set('Link', `<${path}?${q}>; rel="next"`);
  }
  return page;
}

/** `sha256:<hex>` → hex, or null when not a digest reference; DIGEST_INVALID for other algorithms or bad hex. */
function digestRef(ref: string): string | null {
  if (!ref.includes(':')) return null;
  const m = /^sha256:([0-9a-f]{64})$/.exec(ref);
  if (!m) throw new AirlockError('EPATH', `digest "${ref.slice(0, 100)}" is not sha256:<64 lowercase hex>`, { oci: 'DIGEST_INVALID' });
  return m[1]!;
}

async function mediaTypeOf(env: ServeEnv, a: OciImageArtifact): Promise<string> {
  if (a.mediaType) return a.mediaType;
  const known = env.mediaTypes.get(a.sha256);
  if (known) return known;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of await env.store.read(a.sha256)) {
    n += (c as Buffer).length;
    if (n > MAX_MANIFEST) break;
    chunks.push(c as Buffer);
  }
  let type = OCI_MANIFEST;
  try {
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      mediaType?: string;
      manifests?: unknown;
      config?: { mediaType?: string };
    };
    if (typeof doc.mediaType === 'string') type = doc.mediaType;
    else if (doc.manifests) type = 'application/vnd.oci.image.index.v1+json';
    else if (doc.config?.mediaType === 'application/vnd.docker.container.image.v1+json')
      type = 'application/vnd.docker.distribution.manifest.v2+json';
  } catch {
    // not JSON: serve it as an OCI manifest and let the client judge
  }
  env.mediaTypes.set(a.sha256, type);
  return type;
}

function apiHeader(ctx: Context): void {
  ctx.set('Docker-Distribution-API-Version', 'registry/2.0');
}

export function ociRoutes(router: ServeRouter, env: ServeEnv): void {
  router.get(
    'v2',
    CACHE_ROUTES.v2,
    routeTo(async (ctx) => {
      apiHeader(ctx);
      ctx.body = {};
    }),
  );

  router.get(
    'v2-catalog',
    CACHE_ROUTES.v2Catalog,
    routeTo(async (ctx) => {
      apiHeader(ctx);
      const names = repositoryNames(await env.catalog.get(), namespaceOf(ctx));
      ctx.set('Cache-Control', 'no-cache');
      ctx.body = { repositories: paginate(ctx, names, '/v2/_catalog') };
    }),
  );

  router.get(
    'v2-tags',
    CACHE_ROUTES.v2Tags,
    routeTo(async (ctx, [name]) => {
      apiHeader(ctx);
      const repo = await repository(env, ctx, name!);
      ctx.set('Cache-Control', 'no-cache');
      const tags = [...repo.tags.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      ctx.body = { name: repo.name, tags: paginate(ctx, tags, `/v2/${repo.name}/tags/list`) };
    }),
  );

  router.get(
    'v2-manifests',
    CACHE_ROUTES.v2Manifest,
    routeTo(async (ctx, [name, reference]) => {
      apiHeader(ctx);
      const repo = await repository(env, ctx, name!);
      const ref = decodeURIComponent(reference!);
      const hex = digestRef(ref);
      if (hex === null && !TAG_NAME.test(ref)) {
        throw new AirlockError('EPATH', `tag "${ref.slice(0, 100)}" is invalid`, { oci: 'TAG_INVALID' });
      }
      const entry = hex ? repo.manifests.get(hex) : repo.tags.get(ref);
      if (!entry) {
        throw unknown('MANIFEST_UNKNOWN', `${repo.name}:${ref} is not in any staged release`, { name: repo.name, reference: ref });
      }
      const a = entry.artifact;
      const contentType = await mediaTypeOf(env, a);
      // by tag the answer may change with a newer release; by digest it never does
      await sendBlob(ctx, env, {
        sha256: a.sha256,
        size: a.size,
        contentType,
        cacheControl: hex ? undefined : 'no-cache',
        what: `manifest of ${repo.name}:${ref}`,
        // clients read a manifest's type from our Content-Type; a manifest is small, and registry:2 does not redirect them either
        redirect: false,
      });
    }),
  );

  router.get(
    'v2-blobs',
    CACHE_ROUTES.v2Blob,
    routeTo(async (ctx, [name, digest]) => {
      apiHeader(ctx);
      const repo = await repository(env, ctx, name!);
      const ref = decodeURIComponent(digest!);
      const hex = digestRef(ref);
      if (!hex) throw new AirlockError('EPATH', `blob reference "${ref.slice(0, 100)}" is not a digest`, { oci: 'DIGEST_INVALID' });
      const size = repo.blobs.get(hex);
      if (size === undefined) {
        throw unknown('BLOB_UNKNOWN', `blob sha256:${hex} is not part of ${repo.name} in any staged release`, {
          name: repo.name,
          digest: ref,
        });
      }
      await sendBlob(ctx, env, { sha256: hex, size, what: `blob ${ref} of ${repo.name}` });
    }),
  );
}
