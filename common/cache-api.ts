/**
 * The cache's HTTP contract, in one place for both sides: the paths
 * `airlock serve` routes (as @koa/router patterns) and the builders the node
 * client makes them with, and the JSON shapes it answers with. The server
 * types its answers with these; the client reads them with `parseReleases`,
 * so it accepts exactly what the server sends. docs/http-api.md says the same
 * for people.
 */
import { AirlockError } from '../manifests/errors.js';

/**
 * Route patterns, path-to-regexp v8 as @koa/router reads them (`:x` one
 * segment, `*x` one or more). They match the raw, still percent-encoded
 * path: handlers decode each capture once (server/http/path-params.ts).
 * An OCI repository name has several segments, hence `*name`.
 */
export const CACHE_ROUTES = {
  healthz: '/healthz',
  metrics: '/metrics',
  releases: '/releases{/}',
  manifest: '/releases/:release/manifest',
  blob: '/blobs/sha256/:hex',
  file: '/files/:release/*path',
  aptRoot: '/apt/:release/',
  apt: '/apt/:release/*path',
  gemsRoot: '/gems/:release/',
  gems: '/gems/:release/*path',
  /** the cache's apt signing key, binary (for `signed-by=`) and armored; `/apt/:name/*path` never takes these */
  aptKey: '/apt/airlock.gpg',
  aptKeyArmored: '/apt/airlock.asc',
  v2: '/v2{/}',
  v2Catalog: '/v2/_catalog',
  v2Tags: '/v2/*name/tags/list',
  v2Manifest: '/v2/*name/manifests/:reference',
  v2Blob: '/v2/*name/blobs/:digest',
  stage: '/stage',
} as const;

const segment = encodeURIComponent;
/** a relative path, each segment encoded on its own (its `/` stay separators) */
const segments = (path: string): string => path.split('/').map(encodeURIComponent).join('/');

/** Paths on the cache (append to its base URL); names and paths are percent-encoded here, once. */
export const cachePath = {
  releases: (): string => '/releases',
  manifest: (release: string): string => `/releases/${segment(release)}/manifest`,
  blob: (sha256: string): string => `/blobs/sha256/${sha256}`,
  file: (release: string, path: string): string => `/files/${segment(release)}/${segments(path)}`,
  /** a release's flat apt repository, as a sources.list line names it: `deb [signed-by=…] <base><this> ./` */
  aptRepository: (release: string): string => `/apt/${segment(release)}`,
  /** a release's RubyGems source, as `gem install --source <base><this>` and a Gemfile's `source` name it */
  gemSource: (release: string): string => `/gems/${segment(release)}/`,
  /** a product's signed apt repository: `deb [signed-by=…] <base><this> SUITE main` */
  aptProduct: (product: string): string => `/apt/${segment(product)}`,
  /** the cache's apt signing key: binary (a keyring file for `signed-by=`), or ASCII armored */
  aptKey: (armored = false): string => (armored ? '/apt/airlock.asc' : '/apt/airlock.gpg'),
};

/** A count of a release's files or bytes, as `/releases` reports it. */
export interface Tally {
  total: number;
  present: number;
  missing: number;
}

/** One entry of `GET /releases`. */
export interface ReleaseSummary {
  release: string;
  product: string;
  serial: number;
  /** sha256 hex of the canonical payload */
  digest: string;
  /** every blob the release needs is in the store */
  ready: boolean;
  files: Tally;
  bytes: Tally;
}

/** `GET /releases`: every stored release. */
export type ReleasesAnswer = ReleaseSummary[];

/** `GET /healthz` */
export type HealthAnswer = { ok: true; releases: number } | { ok: false; error: string };

/** Every failure outside `/v2/`. */
export interface ErrorAnswer {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/** Every failure under `/v2/`: the OCI distribution spec's shape. */
export interface OciErrorAnswer {
  errors: Array<{ code: string; message: string; detail: Record<string, unknown> }>;
}

const HEX64 = /^[0-9a-f]{64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isTally = (v: unknown): v is Tally => isObject(v) && isCount(v.total) && isCount(v.present) && isCount(v.missing);

/** what is wrong with one entry of the list, or null */
function entryProblem(r: unknown): string | null {
  if (!isObject(r)) return 'not an object';
  if (typeof r.release !== 'string' || r.release === '') return '"release" is not a name';
  if (typeof r.product !== 'string') return '"product" is not a string';
  if (!isCount(r.serial)) return '"serial" is not a non-negative integer';
  if (typeof r.digest !== 'string' || !HEX64.test(r.digest)) return '"digest" is not a sha256 hex digest';
  if (typeof r.ready !== 'boolean') return '"ready" is not true or false';
  if (!isTally(r.files)) return '"files" is not {total, present, missing}';
  if (!isTally(r.bytes)) return '"bytes" is not {total, present, missing}';
  return null;
}

/**
 * Reads a `GET /releases` answer. The cache is an untrusted mirror: anything
 * but the server's shape is EUPSTREAM (fields a newer server adds are
 * dropped). What it says is still only a hint; the envelope's signature
 * decides.
 */
export function parseReleases(body: Buffer | string, url: string): ReleaseSummary[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString());
  } catch {
    throw new AirlockError('EUPSTREAM', `${url}: the cache answered something that is not JSON`, { url });
  }
  if (!Array.isArray(parsed)) throw new AirlockError('EUPSTREAM', `${url}: expected a JSON list of releases`, { url });
  return parsed.map((r: unknown, i) => {
    const problem = entryProblem(r);
    if (problem) throw new AirlockError('EUPSTREAM', `${url}: release entry ${i}: ${problem}`, { url, index: i });
    const e = r as ReleaseSummary;
    const tally = (t: Tally): Tally => ({ total: t.total, present: t.present, missing: t.missing });
    return { release: e.release, product: e.product, serial: e.serial, digest: e.digest, ready: e.ready, files: tally(e.files), bytes: tally(e.bytes) };
  });
}
