/**
 * The cache node's configuration: one YAML file (`--config`, default
 * `./airlock.yml` when present), flags on top, parsed once into a frozen,
 * typed object that is passed in everywhere.
 */
import { resolve } from 'node:path';
import { AirlockError } from '../manifests/errors.js';
import { loadConfigFile, localPath, parseDate, parseDuration, parseSize, type Schema } from '../common/config.js';
import { DEFAULT_POLL_MS, type StorageConfig } from '../storage/backend/select.js';
import { DEFAULT_SHARED_GRACE_MS } from '../storage/gc.js';

export interface AirlockConfig {
  /** absolute path of the config file read, or null */
  configFile: string | null;
  cacheDir: string;
  /** path of the trusted root.json, or null when none was given */
  trust: string | null;
  /** explicit upstream proxy; otherwise the environment's http_proxy/https_proxy/no_proxy */
  proxy: string | null;
  caFile: string | null;
  insecureRegistries: readonly string[];
  parallel: number;
  acceptExpiredUntil: Date | null;
  listen: string;
  adminToken: string | null;
  tls: { cert: string; key: string } | null;
  passthrough: boolean;
  /** `airlock serve`: connections open at once; undefined → derived from the descriptor limit (at most 1024) */
  maxConnections?: number;
  /** `airlock serve` behind nginx: the internal location that maps cache_dir/blobs/ (X-Accel-Redirect), or null */
  accelRedirect?: string | null;
  /** `airlock serve` with blobs in S3: blob and file GETs answer 307 to a presigned URL valid this long (redirect_blobs, redirect_ttl), or null */
  redirectBlobs?: { ttlSeconds: number } | null;
  json: boolean;
  /** bytes/s a download must keep up over `rateWindowMs`, or the next URL is tried (0: no check) */
  minRate: number;
  rateWindowMs: number;
  /** `airlock serve`: the OpenPGP secret key signing the apt indexes; null → the cache's own, made on first use */
  aptSigningKey: string | null;
  /** where blobs live: the filesystem under cache_dir (default, also when absent in a config built by hand) or an S3 bucket (storage/backend/select.ts) */
  storage?: StorageConfig;
  /** other airlock caches (base URLs, no trailing slash) asked first for each blob by digest, directly (never through a proxy) */
  mirrors?: readonly string[];
}

export const CONFIG_SCHEMA: Schema = {
  cache_dir: { type: 'path' },
  trust: { type: 'path' },
  proxy: { type: 'string' },
  ca_file: { type: 'path' },
  insecure_registries: { type: 'string[]' },
  parallel: { type: 'int', min: 1, max: 256 },
  accept_expired_until: { type: 'string' },
  listen: { type: 'string' },
  admin_token: { type: 'string' },
  tls: { type: 'map', fields: { cert: { type: 'path' }, key: { type: 'path' } } },
  passthrough: { type: 'bool' },
  min_rate: { type: 'size' },
  rate_window: { type: 'int', min: 1, max: 3600 },
  max_connections: { type: 'int', min: 1, max: 1_000_000 },
  accel_redirect: { type: 'string' },
  redirect_blobs: { type: 'bool' },
  // SigV4 presigned URLs are valid for at most 7 days
  redirect_ttl: { type: 'duration', min: 1, max: 7 * 86_400 },
  apt_signing_key: { type: 'path' },
  storage: {
    type: 'map',
    fields: {
      backend: { type: 'string', oneOf: ['fs', 's3'] },
      s3: {
        type: 'map',
        fields: {
          endpoint: { type: 'string' },
          bucket: { type: 'string' },
          prefix: { type: 'string', allowEmpty: true },
          region: { type: 'string' },
          force_path_style: { type: 'bool' },
          poll: { type: 'string' },
          gc_grace: { type: 'string' },
        },
      },
    },
  },
  mirrors: { type: 'string[]' },
};

/** The flags every `airlock` command accepts (commander's camelCase names). */
export interface CommonFlags {
  config?: string;
  cacheDir?: string;
  trust?: string;
  proxy?: string;
  caFile?: string;
  insecureRegistry?: string[];
  parallel?: string;
  acceptExpiredUntil?: string;
  listen?: string;
  json?: boolean;
  /** bytes per second, a size such as 1K */
  minRate?: string;
  /** seconds */
  rateWindow?: string;
  /** `airlock stage --mirror URL` (repeatable): replaces `mirrors` */
  mirror?: string[];
}

export const DEFAULT_CONFIG_FILE = 'airlock.yml';
export const DEFAULT_CACHE_DIR = 'airlock-cache';
export const DEFAULT_LISTEN = '0.0.0.0:7070';
/** redirect_ttl: how long a presigned blob URL is valid (15 minutes) */
export const DEFAULT_REDIRECT_TTL = 15 * 60;

/** accel_redirect: an absolute URI path ending in '/', plain characters only (it goes into a response header) */
function accelPrefix(text: string | undefined, path: string | null): string | null {
  if (text === undefined) return null;
  if (!/^\/(?:[A-Za-z0-9._~-]+\/)+$/.test(text) || text.split('/').some((seg) => seg === '.' || seg === '..')) {
    throw new AirlockError('EUSAGE', `config ${path}: accel_redirect must be a location path such as /_airlock_blobs/ (starting and ending with /), got "${text.slice(0, 80)}"`, {
      key: 'accel_redirect',
    });
  }
  return text;
}

export function loadConfig(flags: CommonFlags, cwd: string = process.cwd(), opts: { file?: boolean } = {}): AirlockConfig {
  const file = opts.file === false ? { path: null, values: {} } : loadConfigFile(flags.config, resolve(cwd, DEFAULT_CONFIG_FILE), CONFIG_SCHEMA);
  const v = file.values as {
    cache_dir?: string;
    trust?: string;
    proxy?: string;
    ca_file?: string;
    insecure_registries?: string[];
    parallel?: number;
    accept_expired_until?: string;
    listen?: string;
    admin_token?: string;
    tls?: { cert?: string; key?: string };
    passthrough?: boolean;
    min_rate?: number;
    rate_window?: number;
    max_connections?: number;
    apt_signing_key?: string;
    storage?: StorageYaml;
    accel_redirect?: string;
    redirect_blobs?: boolean;
    redirect_ttl?: number;
    mirrors?: string[];
  };
  let parallel = v.parallel ?? 8;
  if (flags.parallel !== undefined) {
    parallel = Number(flags.parallel);
    if (!Number.isInteger(parallel) || parallel < 1 || parallel > 256) {
      throw new AirlockError('EUSAGE', `--parallel must be an integer from 1 to 256, got "${flags.parallel}"`);
    }
  }
  const expiredText = flags.acceptExpiredUntil ?? v.accept_expired_until;
  let tls: AirlockConfig['tls'] = null;
  if (v.tls) {
    if (!v.tls.cert || !v.tls.key) {
      throw new AirlockError('EUSAGE', `config ${file.path}: key "tls" needs both "cert" and "key"`, { key: 'tls' });
    }
    tls = { cert: v.tls.cert, key: v.tls.key };
  }
  const storage = storageConfig(v.storage, file.path);
  const listen = flags.listen ?? v.listen ?? DEFAULT_LISTEN;
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/.test(listen)) {
    throw new AirlockError('EUSAGE', `listen address must be HOST:PORT, got "${listen}"`, { key: 'listen' });
  }
  return Object.freeze({
    configFile: file.path,
    cacheDir: flags.cacheDir ? localPath(cwd, flags.cacheDir, '--cache-dir') : resolve(cwd, v.cache_dir ?? DEFAULT_CACHE_DIR),
    trust: flags.trust ? localPath(cwd, flags.trust, '--trust') : (v.trust ?? null),
    proxy: flags.proxy ?? v.proxy ?? null,
    caFile: flags.caFile ? localPath(cwd, flags.caFile, '--ca-file') : (v.ca_file ?? null),
    insecureRegistries: Object.freeze([...(v.insecure_registries ?? []), ...(flags.insecureRegistry ?? [])]),
    parallel,
    acceptExpiredUntil: expiredText ? parseDate(expiredText, 'accept_expired_until') : null,
    listen,
    adminToken: v.admin_token ?? null,
    tls,
    passthrough: v.passthrough ?? false,
    ...downloadRate(flags, v.min_rate, v.rate_window),
    maxConnections: v.max_connections,
    accelRedirect: accelPrefix(v.accel_redirect, file.path),
    aptSigningKey: v.apt_signing_key ?? null,
    storage,
    redirectBlobs: redirectBlobs(v.redirect_blobs, v.redirect_ttl, storage, file.path),
    mirrors: Object.freeze(flags.mirror ? mirrorList(flags.mirror, '--mirror') : mirrorList(v.mirrors ?? [], `config ${file.path}: mirrors`)),
    json: flags.json ?? false,
  });
}

/** redirect_blobs presign blob URLs in the bucket: a filesystem store has no URL to send a client to (accel_redirect hands its files to nginx) */
function redirectBlobs(on: boolean | undefined, ttl: number | undefined, storage: StorageConfig, path: string | null): AirlockConfig['redirectBlobs'] {
  if (!on) return null;
  if (storage.backend !== 's3') {
    throw new AirlockError(
      'EUSAGE',
      `config ${path}: redirect_blobs needs blobs in S3 (storage.backend: s3), not on the filesystem; behind nginx, accel_redirect offloads files instead`,
      { key: 'redirect_blobs' },
    );
  }
  return Object.freeze({ ttlSeconds: ttl ?? DEFAULT_REDIRECT_TTL });
}

/** Mirror caches: http(s)://host[:port][/prefix] of another `airlock serve`, without query or credentials; the trailing '/' dropped. */
function mirrorList(list: readonly string[], where: string): string[] {
  return list.map((text) => {
    let u: URL | null = null;
    try {
      u = new URL(text);
    } catch {
      // u stays null
    }
    if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:') || u.search || u.hash || u.username || u.password) {
      throw new AirlockError('EUSAGE', `${where}: a mirror is the base URL of another airlock cache, such as http://site-cache:7070, got "${text.slice(0, 120)}"`, {
        key: 'mirrors',
      });
    }
    return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  });
}

export interface StorageYaml {
  backend?: 'fs' | 's3';
  s3?: { endpoint?: string; bucket?: string; prefix?: string; region?: string; force_path_style?: boolean; poll?: string; gc_grace?: string };
}

/** storage: {backend, s3: {…}}; credentials never come from here (the AWS SDK's chain: environment, ~/.aws) */
export function storageConfig(v: StorageYaml | undefined, path: string | null): StorageConfig {
  if ((v?.backend ?? 'fs') === 'fs') return Object.freeze({ backend: 'fs' as const });
  const bad = (key: string, why: string): never => {
    throw new AirlockError('EUSAGE', `config ${path}: storage.s3.${key} ${why}`, { key: `storage.s3.${key}` });
  };
  const s3 = v?.s3 ?? {};
  if (!s3.bucket) return bad('bucket', 'is needed with storage.backend s3');
  // S3's bucket naming rules: 3 to 63 characters, lowercase letters, digits, dots and hyphens
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(s3.bucket)) bad('bucket', `must be an S3 bucket name (3 to 63 of a-z 0-9 . -), got "${s3.bucket.slice(0, 80)}"`);
  let endpoint: string | null = null;
  if (s3.endpoint !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(s3.endpoint);
    } catch {
      url = null;
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.pathname !== '/' || url.search || url.username) {
      bad('endpoint', `must be an http(s) URL such as http://127.0.0.1:7480, got "${s3.endpoint.slice(0, 80)}"`);
    }
    endpoint = s3.endpoint.replace(/\/+$/, '');
  }
  const duration = (key: string, text: string, min: number): number => {
    const ms = parseDuration(text, `config ${path}: storage.s3.${key}`);
    return ms < min ? bad(key, `must be at least ${min} ms, got "${text}"`) : ms;
  };
  const prefix = s3.prefix ?? '';
  if (!/^[A-Za-z0-9._/-]*$/.test(prefix) || prefix.split('/').some((seg) => seg === '.' || seg === '..')) {
    bad('prefix', `must be a key prefix of plain characters (A-Z a-z 0-9 . _ - /), got "${prefix.slice(0, 80)}"`);
  }
  return Object.freeze({
    backend: 's3' as const,
    s3: Object.freeze({
      endpoint,
      bucket: s3.bucket,
      prefix,
      region: s3.region ?? 'us-east-1',
      // RGW and MinIO answer path-style (endpoint/bucket/key); AWS prefers virtual hosts
      forcePathStyle: s3.force_path_style ?? endpoint !== null,
      pollMs: s3.poll === undefined ? DEFAULT_POLL_MS : duration('poll', s3.poll, 100),
      gcGraceMs: s3.gc_grace === undefined ? DEFAULT_SHARED_GRACE_MS : duration('gc_grace', s3.gc_grace, 0),
    }),
  });
}

/** min_rate / rate_window from flags over the file (1 KiB/s over 60 s unless set). */
function downloadRate(flags: CommonFlags, fileRate: number | undefined, fileWindow: number | undefined): { minRate: number; rateWindowMs: number } {
  let minRate = fileRate ?? 1024;
  if (flags.minRate !== undefined) {
    try {
      minRate = parseSize(flags.minRate, '--min-rate');
    } catch {
      throw new AirlockError('EUSAGE', `--min-rate must be bytes per second such as 1024 or 1K (0 switches the check off), got "${flags.minRate}"`, { key: 'min_rate' });
    }
  }
  let seconds = fileWindow ?? 60;
  if (flags.rateWindow !== undefined) {
    seconds = Number(flags.rateWindow);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) {
      throw new AirlockError('EUSAGE', `--rate-window must be a number of seconds from 1 to 3600, got "${flags.rateWindow}"`, { key: 'rate_window' });
    }
  }
  return { minRate, rateWindowMs: seconds * 1000 };
}

export function requireTrust(config: AirlockConfig): string {
  if (!config.trust) {
    throw new AirlockError('EUSAGE', 'no trust root: pass --trust ROOT.json or set "trust" in the config file');
  }
  return config.trust;
}
