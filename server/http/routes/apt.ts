/**
 * `/apt/…`: signed apt repositories of the staged debs (apt-index.ts).
 *
 * - `/apt/airlock.gpg`, `/apt/airlock.asc`: the cache's signing key.
 * - `/apt/P/dists/SUITE/…` and `/apt/P/pool/<sha256>/<name>.deb`: the
 *   repository of product P; SUITE is a release of P or `current` (the
 *   newest ready release of P, by serial).
 * - `/apt/R/…`: the flat repository of release R (apt asks for `./InRelease`,
 *   `./Release`, `./Release.gpg`, `./Packages.{xz,bz2,lzma}` (absent) and
 *   `./Packages.gz`, then `./<Filename>` for each .deb).
 * - `/apt/X/`: a page with the lines to paste.
 *
 * A first segment names a product when what follows is `dists/` or `pool/`
 * and some staged release belongs to that product; otherwise a release.
 */
import type { Context } from 'koa';
import { createHash } from 'node:crypto';
import { CACHE_ROUTES, cachePath } from '../../../common/cache-api.js';
import { AirlockError } from '../../../manifests/errors.js';
import type { DebArtifact } from '../../../manifests/types.js';
import type { StoredRelease } from '../../../storage/index.js';
import { aptDates, type AptFiles } from '../apt-index.js';
import type { Catalog } from '../catalog.js';
import { routeTo, type ServeEnv, type ServeRouter } from '../env.js';
import { checkHex, decodePath, decodeSegment } from '../path-params.js';
import { sendBlob } from '../send-blob.js';

/** Where a node keeps the key (the sources lines the page prints name it). */
export const KEYRING = '/etc/apt/keyrings/airlock.gpg';

const TYPES: Record<string, string> = {
  InRelease: 'text/plain; charset=utf-8',
  Release: 'text/plain; charset=utf-8',
  'Release.gpg': 'application/pgp-signature',
  Packages: 'text/plain; charset=utf-8',
  'Packages.gz': 'application/gzip',
  'Packages.xz': 'application/x-xz',
};

/** An index file: ETag and Last-Modified, revalidated each time (no-cache); 304 on If-None-Match, else If-Modified-Since. */
function sendIndex(ctx: Context, body: Buffer, type: string, lastModified: Date | null): void {
  const etag = `"sha256:${createHash('sha256').update(body).digest('hex')}"`;
  ctx.set('ETag', etag);
  if (lastModified) ctx.set('Last-Modified', lastModified.toUTCString());
  ctx.set('Cache-Control', 'no-cache');
  ctx.type = type;
  const inm = ctx.get('If-None-Match');
  const ims = Date.parse(ctx.get('If-Modified-Since'));
  const unchanged = inm
    ? inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')
    : lastModified !== null && !Number.isNaN(ims) && Math.floor(lastModified.getTime() / 1000) * 1000 <= ims;
  if (unchanged) {
    ctx.status = 304;
    return;
  }
  ctx.body = body;
}

function sendFrom(ctx: Context, set: AptFiles, name: string, what: string): void {
  const body = set.files.get(name);
  if (!body) throw new AirlockError('ENOTFOUND', `${what} has no ${name}`, { path: name });
  sendIndex(ctx, body, TYPES[name.slice(name.lastIndexOf('/') + 1)] ?? 'application/octet-stream', set.lastModified);
}

/** The base URL the client used: the request's Host when it is a plain host[:port], else the socket's own address. */
export function originOf(ctx: Context): string {
  const proto = ctx.protocol;
  const host = ctx.get('Host');
  if (/^([A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(:\d{1,5})?$/.test(host)) return `${proto}://${host}`;
  const s = ctx.req.socket;
  const addr = s.localAddress ?? '127.0.0.1';
  return `${proto}://${addr.includes(':') ? `[${addr}]` : addr}:${s.localPort}`;
}

interface PerCatalog {
  dates: Map<string, Date>;
  /** product → its releases, highest serial first */
  products: Map<string, StoredRelease[]>;
  /** product → the newest ready release (resolved once per catalog) */
  current: Map<string, Promise<StoredRelease | null>>;
}

export function aptRoutes(router: ServeRouter, env: ServeEnv): void {
  const derived = new WeakMap<Catalog, PerCatalog>();
  const per = (cat: Catalog): PerCatalog => {
    let d = derived.get(cat);
    if (!d) {
      const products = new Map<string, StoredRelease[]>();
      for (const r of cat.releases.values()) products.set(r.product, [...(products.get(r.product) ?? []), r]);
      for (const list of products.values()) list.sort((a, b) => b.serial - a.serial);
      d = { dates: aptDates(cat.releases.values(), env.clock()), products, current: new Map() };
      derived.set(cat, d);
    }
    return d;
  };

  const ready = async (rel: StoredRelease): Promise<boolean> => (await env.store.status(rel.release)).ready;

  const currentOf = (d: PerCatalog, product: string): Promise<StoredRelease | null> => {
    let p = d.current.get(product);
    if (!p) {
      p = (async () => {
        for (const r of d.products.get(product) ?? []) if (await ready(r)) return r;
        return null;
      })();
      d.current.set(product, p);
      p.catch(() => d.current.delete(product));
    }
    return p;
  };

  /** `/apt/P/dists/…` and `/apt/P/pool/…` */
  async function productRepo(ctx: Context, cat: Catalog, product: string, path: string): Promise<void> {
    const d = per(cat);
    const parts = path.split('/');
    if (parts[0] === 'pool') {
      const [, rawHex, name] = parts;
      if (parts.length !== 3 || !rawHex || !name) throw new AirlockError('ENOTFOUND', `apt repository of ${product} has no ${path}`, { product, path });
      const hex = checkHex(rawHex, 'apt pool digest');
      let deb: DebArtifact | undefined;
      for (const r of d.products.get(product) ?? []) {
        deb ??= r.manifest.artifacts.find((a): a is DebArtifact => a.kind === 'deb' && a.sha256 === hex && a.path.split('/').pop() === name);
      }
      if (!deb) throw new AirlockError('ENOTFOUND', `apt repository of ${product} has no ${path}`, { product, path });
      await sendBlob(ctx, env, { sha256: deb.sha256, size: deb.size, contentType: 'application/vnd.debian.binary-package', what: `${path} of product ${product}` });
      return;
    }
    // dists/SUITE/<file…>
    const suite = parts[1];
    const file = parts.slice(2).join('/');
    if (!suite || file === '') throw new AirlockError('ENOTFOUND', `apt repository of ${product} has no ${path}`, { product, path });
    let rel: StoredRelease | null;
    if (suite === 'current') {
      rel = await currentOf(d, product);
      if (!rel) throw new AirlockError('ENOTFOUND', `product ${product} has no ready release on this cache (suite current)`, { product });
    } else {
      rel = cat.releases.get(suite) ?? null;
      if (!rel || rel.product !== product) throw new AirlockError('ENOTFOUND', `release ${suite} of ${product} is not staged on this cache`, { product, release: suite });
      if (!(await ready(rel))) throw new AirlockError('ENOTFOUND', `release ${suite} of ${product} is not ready on this cache (files missing)`, { product, release: suite });
    }
    const set = await env.apt.suite(rel, suite, d.dates.get(rel.release)!);
    sendFrom(ctx, set, file, `suite ${suite} of the apt repository of ${product}`);
  }

  async function page(ctx: Context, cat: Catalog, name: string): Promise<void> {
    const rel = cat.releases.get(name);
    const product = rel?.product ?? (per(cat).products.has(name) ? name : null);
    if (!product) throw new AirlockError('ENOTFOUND', `release ${name} is not staged on this cache`, { release: name });
    const signer = await env.apt.signer();
    const base = originOf(ctx);
    const line = (path: string, rest: string): string => `deb [signed-by=${KEYRING}] ${base}${path} ${rest}`;
    const out = [
      rel ? `airlock apt repositories of release ${name} (product ${product})` : `airlock apt repository of product ${product}`,
      '',
      `The cache's signing key, once per node; check that its fingerprint is ${signer.fingerprint}:`,
      `  curl -fsS ${base}${cachePath.aptKey()} -o ${KEYRING}`,
      `  gpg --show-keys ${KEYRING}`,
      '',
      `${product}, following each new release (suite current):`,
      `  ${line(cachePath.aptProduct(product), 'current main')}`,
    ];
    if (rel) {
      out.push('', `${product} pinned to release ${name}:`, `  ${line(cachePath.aptProduct(product), `${name} main`)}`);
      out.push('', `release ${name} alone (flat):`, `  ${line(cachePath.aptRepository(name), './')}`);
    }
    ctx.type = 'text/plain; charset=utf-8';
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = `${out.join('\n')}\n`;
  }

  const handle = routeTo(async (ctx, [rawName, rawPath]) => {
    const name = decodeSegment(rawName!, 'release');
    const cat = await env.catalog.get();
    const path = rawPath === undefined || rawPath === './' ? '' : decodePath(rawPath, 'apt path', true);
    if (path === '') return page(ctx, cat, name);
    if (/^(dists|pool)\//.test(path) && per(cat).products.has(name)) return productRepo(ctx, cat, name, path);

    const rel = cat.releases.get(name);
    if (!rel) throw new AirlockError('ENOTFOUND', `release ${name} is not staged on this cache`, { release: name });
    const index = await env.apt.flat(rel, per(cat).dates.get(name)!);
    if (index.files.has(path)) return sendFrom(ctx, index, path, `apt repository of release ${name}`);
    const deb = index.debs.get(path);
    if (!deb) throw new AirlockError('ENOTFOUND', `apt repository of release ${name} has no ${path}`, { release: name, path });
    await sendBlob(ctx, env, { sha256: deb.sha256, size: deb.size, contentType: 'application/vnd.debian.binary-package', what: `${path} of release ${name}` });
  });

  const key = (armored: boolean) =>
    routeTo(async (ctx) => {
      const signer = await env.apt.signer();
      const body = armored ? Buffer.from(signer.publicArmored, 'utf8') : signer.publicBinary;
      ctx.set('X-Airlock-Key-Fingerprint', signer.fingerprint);
      // no Last-Modified: another key (apt_signing_key) must never look unchanged; the ETag decides
      sendIndex(ctx, body, armored ? 'application/pgp-keys' : 'application/octet-stream', null);
    });
  router.get('apt', CACHE_ROUTES.aptKey, key(false));
  router.get('apt', CACHE_ROUTES.aptKeyArmored, key(true));
  // the repository's root (`/apt/X/`) and everything in it, one handler
  router.get('apt', CACHE_ROUTES.aptRoot, handle);
  router.get('apt', CACHE_ROUTES.apt, handle);
}
