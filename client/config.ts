/**
 * The node client's configuration: one YAML file (`--config`, default
 * `/etc/airlock-node.yml` when present), flags on top, parsed once into a
 * frozen, typed object that is passed in everywhere.
 */
import { resolve } from 'node:path';
import { AirlockError } from '../manifests/errors.js';
import { loadConfigFile, localPath, parseDate, parseDuration, type Schema } from '../common/config.js';

/** Installer command overrides: argv prefixes (split on spaces) used instead of the built-in tools. */
export interface InstallerCommands {
  /** replaces `tar`-less built-in extraction: a command run as `CMD ARCHIVE TARGET` */
  file: readonly string[] | null;
  deb: readonly string[] | null;
  gem: readonly string[] | null;
  'oci-image': readonly string[] | null;
}

export interface NodeConfig {
  configFile: string | null;
  /** base URLs of the cache nodes, e.g. http://cache:7070, in the order they are tried (empty: none given) */
  caches: readonly string[];
  stateDir: string;
  /** install root: `/` is the real system */
  root: string;
  roles: readonly string[];
  /** trust root given by the operator; a copy is kept under stateDir */
  trust: string | null;
  /** extra CA certificates (PEM) for a cache served over TLS (its own CA, or a self-signed certificate) */
  caFile: string | null;
  memoryFloorCore: number;
  memoryFloorOther: number;
  diskMargin: number;
  parallel: number;
  installers: InstallerCommands;
  acceptExpiredUntil: Date | null;
  json: boolean;
  /** bytes/s a download from a cache must keep up over `rateWindowMs`, or the next cache is tried (0: no check) */
  minRate: number;
  rateWindowMs: number;
  /** how long one outage of the cache(s) (503, 502, 504, refused, reset) is waited out before the run fails (0: not at all) */
  cacheWaitMs: number;
}

export const NODE_CONFIG_SCHEMA: Schema = {
  cache: { type: 'string' },
  state_dir: { type: 'path' },
  root: { type: 'path' },
  roles: { type: 'string[]' },
  trust: { type: 'path' },
  ca_file: { type: 'path' },
  memory_floor_core: { type: 'size' },
  memory_floor_other: { type: 'size' },
  disk_margin: { type: 'size' },
  parallel: { type: 'int', min: 1, max: 64 },
  accept_expired_until: { type: 'string' },
  min_rate: { type: 'size' },
  rate_window: { type: 'int', min: 1, max: 3600 },
  cache_wait: { type: 'duration', min: 0, max: 7 * 86400 },
  installers: {
    type: 'map',
    fields: { file: { type: 'string' }, deb: { type: 'string' }, gem: { type: 'string' }, 'oci-image': { type: 'string' } },
  },
};

export interface NodeFlags {
  config?: string;
  cache?: string;
  stateDir?: string;
  root?: string;
  role?: string[];
  trust?: string;
  caFile?: string;
  acceptExpiredUntil?: string;
  waitForCache?: string;
  json?: boolean;
}

export const DEFAULT_NODE_CONFIG_FILE = '/etc/airlock-node.yml';
export const DEFAULT_STATE_DIR = '/var/lib/airlock-node';
/** a rolling restart of the replicas, a load balancer without a live one for a while */
export const DEFAULT_CACHE_WAIT_MS = 5 * 60_000;
export const CORE_ROLES: readonly string[] = Object.freeze(['core', 'cache']);

function argv(text: string | undefined): readonly string[] | null {
  if (!text) return null;
  return Object.freeze(text.split(/\s+/).filter(Boolean));
}

export function loadNodeConfig(flags: NodeFlags, cwd: string = process.cwd(), fallbackFile: string | null = DEFAULT_NODE_CONFIG_FILE): NodeConfig {
  const file = loadConfigFile(flags.config ? resolve(cwd, flags.config) : undefined, fallbackFile, NODE_CONFIG_SCHEMA);
  const v = file.values as {
    cache?: string;
    state_dir?: string;
    root?: string;
    roles?: string[];
    trust?: string;
    ca_file?: string;
    memory_floor_core?: number;
    memory_floor_other?: number;
    disk_margin?: number;
    parallel?: number;
    accept_expired_until?: string;
    min_rate?: number;
    rate_window?: number;
    cache_wait?: number;
    installers?: Partial<Record<keyof InstallerCommands, string>>;
  };
  // one cache, or several separated by commas: tried in order, each resuming what the one before left
  const caches = (flags.cache ?? v.cache ?? '')
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c !== '');
  for (const c of caches) {
    if (!/^https?:\/\/[^\s/]+/.test(c)) {
      throw new AirlockError('EUSAGE', `cache must be an http(s) URL such as http://cache:7070 (several: separated by commas), got "${c}"`, { key: 'cache' });
    }
  }
  const expiredText = flags.acceptExpiredUntil ?? v.accept_expired_until;
  const roles = flags.role && flags.role.length > 0 ? flags.role : (v.roles ?? []);
  return Object.freeze({
    configFile: file.path,
    caches: Object.freeze(caches.map((c) => c.replace(/\/+$/, ''))),
    stateDir: flags.stateDir ? localPath(cwd, flags.stateDir, '--state-dir') : resolve(cwd, v.state_dir ?? DEFAULT_STATE_DIR),
    root: flags.root ? localPath(cwd, flags.root, '--root') : resolve(cwd, v.root ?? '/'),
    roles: Object.freeze([...roles]),
    trust: flags.trust ? localPath(cwd, flags.trust, '--trust') : (v.trust ?? null),
    caFile: flags.caFile ? localPath(cwd, flags.caFile, '--ca-file') : (v.ca_file ?? null),
    memoryFloorCore: v.memory_floor_core ?? 2 ** 30,
    memoryFloorOther: v.memory_floor_other ?? 512 * 2 ** 20,
    diskMargin: v.disk_margin ?? 256 * 2 ** 20,
    parallel: v.parallel ?? 4,
    installers: Object.freeze({
      file: argv(v.installers?.file),
      deb: argv(v.installers?.deb),
      gem: argv(v.installers?.gem),
      'oci-image': argv(v.installers?.['oci-image']),
    }),
    acceptExpiredUntil: expiredText ? parseDate(expiredText, 'accept_expired_until') : null,
    json: flags.json ?? false,
    minRate: v.min_rate ?? 1024,
    rateWindowMs: (v.rate_window ?? 60) * 1000,
    cacheWaitMs: flags.waitForCache !== undefined ? parseDuration(flags.waitForCache, '--wait-for-cache') : v.cache_wait !== undefined ? v.cache_wait * 1000 : DEFAULT_CACHE_WAIT_MS,
  });
}

/** The memory floor that applies to a node with these roles. */
export function memoryFloor(config: NodeConfig): number {
  return config.roles.some((r) => CORE_ROLES.includes(r)) ? config.memoryFloorCore : config.memoryFloorOther;
}
