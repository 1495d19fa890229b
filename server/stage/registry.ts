/**
 * A read-only client of the registry v2 API, enough to stage images by
 * digest and to resolve tags for `manifest build`:
 * - manifests with every media type in `Accept` (a registry answers 404 to
 *   an OCI manifest it may not send, and converts v2s2 to schema 1 without
 *   an Accept: both would break the signed digest);
 * - the anonymous Bearer token flow from `WWW-Authenticate` (realm, service,
 *   scope), tokens cached per origin and scope. The realm must be on the
 *   registry's own host or a sibling under its parent domain
 *   (registry-1.docker.io → auth.docker.io), over https unless the registry
 *   itself is plain http, and is reached the way a redirect from the registry
 *   would be (same proxy): a registry cannot send us to fetch from an
 *   arbitrary or internal host;
 * - blobs by digest, through a `Fetcher` so storage's resumable ingest drives
 *   them; redirects to blob storage are followed by the http client, which
 *   drops `Authorization` when the host changes.
 * https unless the registry is listed in `insecure_registries`, as Docker does.
 */
import { parseImageRef as parseRef } from '../../manifests/image-ref.js';
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { AirlockError, sha256Hex, type BlobRef } from '../../manifests/index.js';
import type { Fetcher, FetchOptions, FetchResult } from '../../storage/index.js';
import { fetchRange, statusError, type HttpClient, type HttpResponse } from '../../storage/index.js';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

export const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

/** Image manifests are small; anything bigger is not one. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface ImageRef {
  /** host[:port] as written (docker.io for bare names) */
  registry: string;
  repository: string;
  tag: string | null;
  /** sha256:… when the reference pins one */
  digest: string | null;
}

/** Which registry and repository to ask: Docker's defaults (docker.io, library/, latest) on the shared reading. */
export function parseImageRef(text: string): ImageRef {
  const ref = parseRef(text);
  const registry = ref.host ?? 'docker.io';
  const repository = registry === 'docker.io' && !ref.path.includes('/') ? `library/${ref.path}` : ref.path;
  return { registry, repository, tag: ref.tag ?? (ref.digest ? null : 'latest'), digest: ref.digest };
}

export interface RegistryClientOptions {
  http: HttpClient;
  /** host[:port] entries spoken to over plain http */
  insecureRegistries?: readonly string[];
  /** a token must have arrived within this long (default 60 s): a token endpoint cannot trickle forever */
  tokenTimeoutMs?: number;
}

export interface FetchedManifest {
  body: Buffer;
  digest: string;
  mediaType: string;
}

interface Challenge {
  realm: string;
  service?: string;
  scope?: string;
}

function parseChallenge(header: string | undefined): Challenge | null {
  if (!header || !/^bearer\s/i.test(header)) return null;
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return params.realm ? { realm: params.realm, service: params.service, scope: params.scope } : null;
}

async function readAll(stream: Readable, cap: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    if (n > cap) {
      stream.destroy();
      throw new AirlockError('EINTEGRITY', `${what}: longer than ${cap} bytes`, { url: what, limit: cap });
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts);
}

export class RegistryClient {
  private readonly http: HttpClient;
  private readonly insecure: Set<string>;
  private readonly tokens = new Map<string, Promise<string>>();
  private readonly tokenTimeoutMs: number;

  constructor(opts: RegistryClientOptions) {
    this.http = opts.http;
    this.tokenTimeoutMs = opts.tokenTimeoutMs ?? 60_000;
    this.insecure = new Set((opts.insecureRegistries ?? []).map((r) => r.toLowerCase()));
  }

  /** Docker Hub's API lives on another name than its references. */
  apiHost(ref: ImageRef): string {
    return ref.registry === 'docker.io' ? 'registry-1.docker.io' : ref.registry;
  }

  origin(ref: ImageRef): string {
    const host = this.apiHost(ref);
    const bare = host.replace(/:\d+$/, '');
    const scheme = this.insecure.has(host.toLowerCase()) || this.insecure.has(bare.toLowerCase()) ? 'http' : 'https';
    return `${scheme}://${host}`;
  }

  manifestUrl(ref: ImageRef, reference: string): string {
    return `${this.origin(ref)}/v2/${ref.repository}/manifests/${reference}`;
  }

  blobUrl(ref: ImageRef, digest: string): string {
    return `${this.origin(ref)}/v2/${ref.repository}/blobs/${digest}`;
  }

  /** One GET with the token flow: on a Bearer 401, fetch an anonymous token and ask once more. */
  async get(url: string, opts: { headers?: Record<string, string>; offset?: number; maxLength?: number; signal?: AbortSignal } = {}): Promise<HttpResponse> {
    const u = new URL(url);
    const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(u.pathname)?.[1];
    const defaultScope = repo ? `repository:${repo}:pull` : undefined;
    const key = (scope: string | undefined): string => `${u.origin} ${scope ?? ''}`;
    const send = async (token: string | null): Promise<HttpResponse> =>
      this.http.request(url, {
        ...opts,
        headers: { ...(opts.headers ?? {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      });
    const cached = this.tokens.get(key(defaultScope));
    let res = await send(cached ? await cached.catch(() => null) : null);
    if (res.status !== 401) return res;
    res.body.resume();
    const challenge = parseChallenge(String(res.headers['www-authenticate'] ?? ''));
    if (!challenge) {
      throw new AirlockError('EUPSTREAM', `${url}: registry asks for credentials (${res.headers['www-authenticate'] ?? 'no challenge'}); only anonymous pulls are supported`, {
        url,
        status: 401,
        retryable: false,
      });
    }
    const scope = challenge.scope ?? defaultScope;
    const pending = this.token(challenge, scope, u, opts.signal);
    this.tokens.set(key(defaultScope), pending);
    if (scope !== defaultScope) this.tokens.set(key(scope), pending);
    res = await send(await pending);
    if (res.status === 401) {
      res.body.resume();
      throw new AirlockError('EUPSTREAM', `${url}: registry refused the anonymous token for ${scope ?? 'this request'}`, { url, status: 401, retryable: false });
    }
    return res;
  }

  private async token(ch: Challenge, scope: string | undefined, registry: URL, signal?: AbortSignal): Promise<string> {
    const realm = checkRealm(ch.realm, registry);
    if (ch.service) realm.searchParams.set('service', ch.service);
    if (scope) realm.searchParams.set('scope', scope);
    const deadline = AbortSignal.timeout(this.tokenTimeoutMs);
    const slow = (e: unknown): never => {
      if (!deadline.aborted || signal?.aborted) throw e;
      throw new AirlockError('EUPSTREAM', `${realm.href}: too slow: no token within ${this.tokenTimeoutMs / 1000} s`, { url: realm.href, cause: 'too slow' });
    };
    const both = signal ? AbortSignal.any([signal, deadline]) : deadline;
    const res = await this.http.request(realm.href, { signal: both, maxLength: 1024 * 1024, routeAs: registry.href }).catch(slow);
    if (res.status !== 200) {
      res.body.resume();
      throw statusError(res.status, realm.href);
    }
    const body = await readAll(res.body, 1024 * 1024, realm.href).catch(slow);
    let parsed: { token?: unknown; access_token?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new AirlockError('EUPSTREAM', `${realm.href}: token endpoint did not answer JSON`, { url: realm.href, retryable: true });
    }
    const token = parsed.token ?? parsed.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new AirlockError('EUPSTREAM', `${realm.href}: token endpoint answered without a token`, { url: realm.href, retryable: false });
    }
    return token;
  }

  /** A manifest by tag or digest, its digest computed from the bytes (never taken from a header); `maxBytes` caps it (EINTEGRITY beyond). */
  async manifest(ref: ImageRef, reference: string, signal?: AbortSignal, maxBytes: number = MAX_MANIFEST_BYTES): Promise<FetchedManifest> {
    const url = this.manifestUrl(ref, reference);
    // a signed size makes a tighter cap than "manifests are small"
    const cap = Math.min(maxBytes, MAX_MANIFEST_BYTES);
    const res = await this.get(url, { headers: { accept: MANIFEST_ACCEPT }, maxLength: cap + 1, signal });
    if (res.status !== 200) {
      res.body.resume();
      throw statusError(res.status, url);
    }
    const body = await readAll(res.body, cap, url);
    const declared = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const mediaType = mediaTypeOf(body, declared);
    return { body, digest: `sha256:${sha256Hex(body)}`, mediaType };
  }

  /** A Fetcher for registry URLs (manifests and blobs) with the token flow. */
  fetcher(): Fetcher {
    return {
      fetch: async (url: string, opts: FetchOptions): Promise<FetchResult> => {
        const headers = url.includes('/manifests/') ? { accept: MANIFEST_ACCEPT } : undefined;
        return fetchRange(url, opts, (offset) => this.get(url, { headers, offset, maxLength: opts.maxLength, signal: opts.signal }));
      },
    };
  }
}

/** The token realm a registry named, if it is one we may ask (see the file comment); EUPSTREAM otherwise. */
export function checkRealm(text: string, registry: URL): URL {
  const refuse = (why: string): never => {
    throw new AirlockError('EUPSTREAM', `${registry.origin}: token realm ${text} ${why}; refused`, { url: registry.href, realm: text, cause: 'token realm', retryable: false });
  };
  let realm: URL;
  try {
    realm = new URL(text);
  } catch {
    return refuse('is not a URL');
  }
  if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && registry.protocol === 'http:')) {
    refuse(registry.protocol === 'https:' ? 'is not https' : 'is not http(s)');
  }
  const host = registry.hostname.toLowerCase();
  const target = realm.hostname.toLowerCase();
  if (target === host) return realm;
  // a sibling under the registry's parent domain, never a bare TLD-like parent (example.com → com)
  const parent = isIP(host) ? null : host.split('.').slice(1).join('.');
  if (parent && parent.includes('.') && (target === parent || target.endsWith(`.${parent}`))) return realm;
  return refuse(`is not on the registry's host (${host}) or a sibling of it`);
}

interface ManifestJson {
  mediaType?: string;
  config?: { digest?: string; size?: number };
  layers?: Array<{ digest?: string; size?: number }>;
  manifests?: Array<{ digest?: string; size?: number; mediaType?: string; platform?: { os?: string; architecture?: string; variant?: string } }>;
}

function parseManifest(body: Buffer, where: string): ManifestJson {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as ManifestJson;
  } catch (e) {
    throw new AirlockError('EINTEGRITY', `${where}: image manifest is not JSON: ${(e as Error).message}`, { where });
  }
}

/** OCI manifests may omit `mediaType`; the shape tells. */
export function mediaTypeOf(body: Buffer, declared = ''): string {
  const m = parseManifest(body, 'manifest');
  if (m.mediaType) return m.mediaType;
  if (declared && declared !== 'application/json') return declared;
  return Array.isArray(m.manifests) ? MEDIA.ociIndex : MEDIA.ociManifest;
}

export function isIndex(mediaType: string): boolean {
  return mediaType === MEDIA.ociIndex || mediaType === MEDIA.dockerList;
}

/** Config then layers, as BlobRefs (sha256 hex). */
export function manifestBlobs(body: Buffer, where: string): BlobRef[] {
  const m = parseManifest(body, where);
  if (Array.isArray(m.manifests)) {
    throw new AirlockError('EINTEGRITY', `${where}: is an image index, expected a single-platform image manifest`, { where });
  }
  const entries = [m.config, ...(m.layers ?? [])];
  return entries.map((e, i) => {
    const d = /^sha256:([0-9a-f]{64})$/.exec(String(e?.digest ?? ''));
    if (!d || typeof e?.size !== 'number' || !Number.isSafeInteger(e.size) || e.size < 0) {
      throw new AirlockError('EINTEGRITY', `${where}: ${i === 0 ? 'config' : `layer ${i}`} has no sha256 digest and size`, { where });
    }
    return { sha256: d[1]!, size: e.size };
  });
}

/** The linux/amd64 entry of an index (an index is resolved when the manifest is built: docs/manifest.md). */
export function pickPlatform(body: Buffer, where: string, os = 'linux', arch = 'amd64'): { digest: string; size: number } {
  const m = parseManifest(body, where);
  const hit = (m.manifests ?? []).find((e) => e.platform?.os === os && e.platform?.architecture === arch);
  if (!hit?.digest || typeof hit.size !== 'number') {
    throw new AirlockError('ENOTFOUND', `${where}: image index has no ${os}/${arch} manifest`, { where });
  }
  return { digest: hit.digest, size: hit.size };
}

/** The image manifest must reference exactly the blobs the signed release lists. */
export function assertSameBlobs(body: Buffer, listed: readonly BlobRef[], where: string): void {
  const key = (b: BlobRef): string => `${b.sha256}:${b.size}`;
  const found = manifestBlobs(body, where).map(key).sort();
  const expected = listed.map(key).sort();
  if (found.length !== expected.length || found.some((k, i) => k !== expected[i])) {
    const extra = found.filter((k) => !expected.includes(k));
    const lacking = expected.filter((k) => !found.includes(k));
    throw new AirlockError(
      'EINTEGRITY',
      `${where}: image manifest references other blobs than the release lists (not listed: ${extra.join(', ') || 'none'}; listed but absent: ${lacking.join(', ') || 'none'})`,
      { where, expected, found },
    );
  }
}
