/**
 * The schemas of the two signed documents, checked field by field so a
 * publisher reads exactly what is wrong and where: which artifact (index and
 * path), which field, what was expected and what was found. Unknown fields
 * are refused everywhere: a field this version does not understand might be
 * one the signer meant to be obeyed.
 */
import { AirlockError } from './errors.js';
import { SHA256_HEX } from './digest.js';
import { assertSafePath, assertUniquePaths } from './paths.js';
import { LIMITS, type Artifact, type BlobRef, type ReleaseManifest, type RoleSpec, type RootKey, type RootPayload } from './types.js';

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A short, bounded rendering of a wrong value for messages. */
export function describe(v: unknown): string {
  if (v === undefined) return 'nothing (missing)';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return `${typeof v} ${s.length > 60 ? `${s.slice(0, 57)}…` : s}`;
}

/** Checks one object's fields; every message starts with `where`. */
class Fields {
  constructor(
    readonly where: string,
    readonly obj: Obj,
  ) {}

  wrong(field: string, expected: string, found: unknown = this.obj[field]): never {
    throw new AirlockError('EMANIFEST', `${this.where}: field "${field}": expected ${expected}, found ${describe(found)}`, {
      where: this.where,
      field,
      expected,
    });
  }

  only(allowed: readonly string[]): void {
    for (const k of Object.keys(this.obj)) {
      if (!allowed.includes(k)) {
        throw new AirlockError('EMANIFEST', `${this.where}: unknown field "${k}" (allowed: ${allowed.join(', ')})`, {
          where: this.where,
          field: k,
        });
      }
    }
  }

  has(field: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.obj, field);
  }

  string(field: string, pattern?: RegExp, expected = 'a non-empty string'): string {
    const v = this.obj[field];
    if (typeof v !== 'string' || v === '' || (pattern && !pattern.test(v))) this.wrong(field, expected);
    return v as string;
  }

  literal<T extends string | number>(field: string, value: T): T {
    if (this.obj[field] !== value) this.wrong(field, JSON.stringify(value));
    return value;
  }

  int(field: string, min: number, max: number): number {
    const v = this.obj[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      this.wrong(field, `an integer from ${min} to ${max}`);
    }
    return v as number;
  }

  sha256(field: string): string {
    return this.string(field, SHA256_HEX, 'a sha256 digest: 64 lowercase hex characters');
  }

  size(field: string): number {
    return this.int(field, 0, LIMITS.artifactSize);
  }

  /** RFC 3339 UTC, e.g. 2027-03-01T00:00:00Z */
  time(field: string): Date {
    const expected = 'an RFC 3339 UTC time like "2027-03-01T00:00:00Z"';
    const v = this.string(field, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/, expected);
    const d = new Date(v);
    if (Number.isNaN(d.getTime()) || d.toISOString().slice(0, 19) !== v.slice(0, 19)) this.wrong(field, expected);
    return d;
  }

  array(field: string, min: number, max: number): unknown[] {
    const v = this.obj[field];
    if (!Array.isArray(v) || v.length < min || v.length > max) {
      this.wrong(field, max === Infinity ? `an array of at least ${min}` : `an array of ${min} to ${max} items`);
    }
    return v as unknown[];
  }

  strings(field: string, min: number, max: number): string[] {
    const list = this.array(field, min, max);
    list.forEach((s, i) => {
      if (typeof s !== 'string' || s === '') this.wrong(`${field}[${i}]`, 'a non-empty string', s);
    });
    return list as string[];
  }

  object(field: string): Fields {
    const v = this.obj[field];
    if (!isObject(v)) this.wrong(field, 'an object');
    return new Fields(`${this.where}.${field}`, v as Obj);
  }
}

/** Names used in URLs and state keys: product and release. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/;
const NAME_EXPECTED = 'a name of letters, digits and . _ + ~ - (up to 128, starting with a letter or digit)';

const KINDS = ['file', 'deb', 'gem', 'oci-image'] as const;
const COMMON = ['path', 'kind', 'sha256', 'size', 'roles'];
const KIND_FIELDS: Record<(typeof KINDS)[number], string[]> = {
  file: [...COMMON, 'urls', 'install'],
  deb: [...COMMON, 'urls', 'package', 'version', 'arch'],
  gem: [...COMMON, 'urls', 'gem', 'version'],
  'oci-image': [...COMMON, 'image', 'mediaType', 'blobs'],
};

function checkUrls(f: Fields): string[] {
  const urls = f.strings('urls', 1, LIMITS.urlsPerArtifact);
  urls.forEach((u, i) => {
    let url: URL | null = null;
    try {
      url = new URL(u);
    } catch {
      /* reported below */
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) f.wrong(`urls[${i}]`, 'an absolute http:// or https:// URL', u);
  });
  return urls;
}

/** `install.extract` / `install.copy`: absolute paths inside the node's --root, no climbing out. */
function checkInstall(f: Fields): void {
  if (!f.has('install')) return;
  const inst = f.object('install');
  inst.only(['extract', 'copy', 'mode']);
  for (const field of ['extract', 'copy']) {
    if (!inst.has(field)) continue;
    const v = inst.string(field, /^\//, 'an absolute path (starting with "/")');
    if (v !== '/') assertSafePath(v.slice(1).replace(/\/$/, ''), `${inst.where}.${field}`);
  }
  if (inst.has('extract') && inst.has('copy')) inst.wrong('copy', 'only one of "extract" or "copy"', inst.obj.copy);
  if (inst.has('mode')) inst.string('mode', /^0?[0-7]{3}$/, 'an octal file mode like "0644"');
}

function checkArtifact(value: unknown, index: number): Artifact {
  if (!isObject(value)) {
    throw new AirlockError('EMANIFEST', `artifacts[${index}]: expected an object, found ${describe(value)}`, { index });
  }
  const pathText = typeof value.path === 'string' ? ` (path ${JSON.stringify(value.path.slice(0, 200))})` : '';
  const f = new Fields(`artifacts[${index}]${pathText}`, value);
  const kind = value.kind;
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) f.wrong('kind', `one of ${KINDS.join(', ')}`);
  const k = kind as (typeof KINDS)[number];
  f.only(KIND_FIELDS[k]);
  if (typeof value.path !== 'string') f.wrong('path', 'a relative POSIX path string');
  assertSafePath(value.path as string, `artifacts[${index}]`);
  f.sha256('sha256');
  f.size('size');
  if (f.has('roles')) f.strings('roles', 0, 64);
  switch (k) {
    case 'file':
      checkUrls(f);
      checkInstall(f);
      break;
    case 'deb':
      checkUrls(f);
      f.string('package');
      f.string('version');
      f.string('arch');
      break;
    case 'gem':
      checkUrls(f);
      f.string('gem');
      f.string('version');
      break;
    case 'oci-image': {
      f.string('image');
      if (f.has('mediaType')) f.string('mediaType');
      const blobs = f.array('blobs', 0, LIMITS.blobsPerImage);
      blobs.forEach((b, j) => {
        if (!isObject(b)) f.wrong(`blobs[${j}]`, 'an object { sha256, size }', b);
        const bf = new Fields(`${f.where}.blobs[${j}]`, b as Obj);
        bf.only(['sha256', 'size']);
        bf.sha256('sha256');
        bf.size('size');
      });
      break;
    }
  }
  return value as unknown as Artifact;
}

/** One digest must mean one size across the whole manifest. */
function checkConsistentSizes(artifacts: Artifact[]): void {
  const sizes = new Map<string, { size: number; where: string }>();
  const note = (ref: BlobRef, where: string): void => {
    const known = sizes.get(ref.sha256);
    if (known && known.size !== ref.size) {
      throw new AirlockError(
        'EMANIFEST',
        `${where}: sha256 ${ref.sha256} has size ${ref.size} but ${known.where} gives it size ${known.size}`,
        { sha256: ref.sha256 },
      );
    }
    if (!known) sizes.set(ref.sha256, { size: ref.size, where });
  };
  artifacts.forEach((a, i) => {
    note(a, `artifacts[${i}]`);
    if (a.kind === 'oci-image') a.blobs.forEach((b, j) => note(b, `artifacts[${i}].blobs[${j}]`));
  });
}

/** The release manifest's schema (DESIGN.md, manifests/types.ts). EMANIFEST / EPATH with the place. */
export function validateReleaseManifest(value: unknown): ReleaseManifest {
  if (!isObject(value)) throw new AirlockError('EMANIFEST', `manifest: expected a JSON object, found ${describe(value)}`);
  const f = new Fields('manifest', value);
  f.literal('type', 'airlock-release');
  f.literal('spec', 1);
  f.only(['type', 'spec', 'product', 'release', 'serial', 'issued', 'expires', 'artifacts']);
  f.string('product', NAME, NAME_EXPECTED);
  f.string('release', NAME, NAME_EXPECTED);
  f.int('serial', 0, Number.MAX_SAFE_INTEGER);
  const issued = f.time('issued');
  const expires = f.time('expires');
  if (expires.getTime() <= issued.getTime()) f.wrong('expires', `a time after "issued" (${String(value.issued)})`);
  const list = f.array('artifacts', 0, LIMITS.artifacts);
  const artifacts = list.map((a, i) => checkArtifact(a, i));
  assertUniquePaths(artifacts.map((a) => a.path));
  checkConsistentSizes(artifacts);
  return value as unknown as ReleaseManifest;
}

const KEYID = /^[0-9a-f]{64}$/;

function checkRole(f: Fields, name: 'root' | 'release', keys: Record<string, RootKey>): RoleSpec {
  const r = f.object(name);
  r.only(['keyids', 'threshold']);
  const keyids = r.strings('keyids', 1, 64);
  const seen = new Set<string>();
  keyids.forEach((id, i) => {
    if (!Object.prototype.hasOwnProperty.call(keys, id)) r.wrong(`keyids[${i}]`, 'a key id listed under "keys"', id);
    if (seen.has(id)) r.wrong(`keyids[${i}]`, 'each key id once', id);
    seen.add(id);
  });
  const distinct = new Set(keyids.map((id) => keys[id]!.public)).size;
  const threshold = r.int('threshold', 1, 64);
  if (threshold > distinct) r.wrong('threshold', `at most ${distinct}, the number of distinct keys in the role`);
  return { keyids, threshold };
}

/** root.json's payload schema. */
export function validateRootPayload(value: unknown): RootPayload {
  if (!isObject(value)) throw new AirlockError('EMANIFEST', `root: expected a JSON object, found ${describe(value)}`);
  const f = new Fields('root', value);
  f.literal('type', 'airlock-root');
  f.literal('spec', 1);
  f.only(['type', 'spec', 'version', 'expires', 'keys', 'roles']);
  f.int('version', 1, Number.MAX_SAFE_INTEGER);
  f.time('expires');
  const keysF = f.object('keys');
  const keys: Record<string, RootKey> = {};
  for (const [id, entry] of Object.entries(keysF.obj)) {
    if (!KEYID.test(id)) keysF.wrong(id, 'a key id of 64 lowercase hex characters as the field name', id);
    if (!isObject(entry)) keysF.wrong(id, 'an object { keytype, public }', entry);
    const k = new Fields(`root.keys.${id.slice(0, 16)}…`, entry as Obj);
    k.only(['keytype', 'public']);
    k.literal('keytype', 'ed25519');
    k.string('public', /^[A-Za-z0-9+/]{43}=$/, 'base64 of the raw 32-byte ed25519 public key');
    if (Buffer.from(k.obj.public as string, 'base64').toString('base64') !== k.obj.public) {
      k.wrong('public', 'base64 of the raw 32-byte ed25519 public key');
    }
    keys[id] = entry as unknown as RootKey;
  }
  const roles = f.object('roles');
  roles.only(['root', 'release']);
  checkRole(roles, 'root', keys);
  checkRole(roles, 'release', keys);
  return value as unknown as RootPayload;
}
