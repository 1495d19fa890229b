/**
 * The schemas of the two signed documents, checked field by field so a
 * publisher reads exactly what is wrong and where: which artifact (index and
 * path), which field, what was expected and what was found. Unknown fields
 * are refused everywhere: a field this version does not understand might be
 * one the signer meant to be obeyed.
 */
import { parseImageRef } from './image-ref.js';
import { AirlockError } from './errors.js';
import { assertSafePath, assertUniquePaths, unsafePathReason } from './paths.js';
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

/** 64 lowercase hex characters, without a regex call per digest. */
function isSha256Hex(v: string): boolean {
  if (v.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = v.charCodeAt(i);
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/**
 * Checks one object's fields; every message starts with `where`. The place
 * is spelled only when a message needs it: a 100,000-artifact manifest
 * would otherwise build (and drop) 100,000 such strings on the success path.
 */
class Fields {
  constructor(
    readonly obj: Obj,
    /** the whole place, or the field name under `parent` */
    private readonly name: string,
    private readonly parent: Fields | null = null,
    /** `name[index]` when set */
    private readonly index = -1,
  ) {}

  get where(): string {
    const own = this.index < 0 ? this.name : `${this.name}[${this.index}]`;
    return this.parent ? `${this.parent.where}.${own}` : own;
  }

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
    const v = this.obj[field];
    if (typeof v !== 'string' || !isSha256Hex(v)) this.wrong(field, 'a sha256 digest: 64 lowercase hex characters');
    return v as string;
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
    for (let i = 0; i < list.length; i++) {
      const s = list[i];
      if (typeof s !== 'string' || s === '') this.wrong(`${field}[${i}]`, 'a non-empty string', s);
    }
    return list as string[];
  }

  object(field: string): Fields {
    const v = this.obj[field];
    if (!isObject(v)) this.wrong(field, 'an object');
    return new Fields(v as Obj, field, this);
  }
}

/** `artifacts[3] (path "a/b")`: the path is part of the place, so spelled lazily too. */
class ArtifactFields extends Fields {
  constructor(
    obj: Obj,
    private readonly at: number,
  ) {
    super(obj, 'artifacts');
  }

  override get where(): string {
    const path = this.obj.path;
    const pathText = typeof path === 'string' ? ` (path ${JSON.stringify(path.slice(0, 200))})` : '';
    return `artifacts[${this.at}]${pathText}`;
  }
}

/** Names used in URLs and state keys: product and release. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/;
const NAME_EXPECTED = 'a name of letters, digits and . _ + ~ - (up to 128, starting with a letter or digit)';

const KINDS = ['file', 'deb', 'gem', 'oci-image'] as const;
const BLOB_FIELDS = ['sha256', 'size'];
const COMMON = ['path', 'kind', 'sha256', 'size', 'roles'];
const KIND_FIELDS: Record<(typeof KINDS)[number], string[]> = {
  file: [...COMMON, 'urls', 'install'],
  deb: [...COMMON, 'urls', 'package', 'version', 'arch'],
  gem: [...COMMON, 'urls', 'gem', 'version'],
  'oci-image': [...COMMON, 'image', 'mediaType', 'blobs'],
};

function checkUrls(f: Fields): string[] {
  const urls = f.strings('urls', 1, LIMITS.urlsPerArtifact);
  for (let i = 0; i < urls.length; i++) {
    const u = urls[i]!;
    let url: URL | null = null;
    try {
      url = new URL(u);
    } catch {
      /* reported below */
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) f.wrong(`urls[${i}]`, 'an absolute http:// or https:// URL', u);
  }
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
  const f = new ArtifactFields(value, index);
  const kind = value.kind;
  if (typeof kind !== 'string' || !(KINDS as readonly string[]).includes(kind)) f.wrong('kind', `one of ${KINDS.join(', ')}`);
  const k = kind as (typeof KINDS)[number];
  f.only(KIND_FIELDS[k]);
  if (typeof value.path !== 'string') f.wrong('path', 'a relative POSIX path string');
  if (unsafePathReason(value.path as string) !== null) assertSafePath(value.path as string, `artifacts[${index}]`);
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
      const image = f.string('image');
      try {
        parseImageRef(image, 'EMANIFEST');
      } catch {
        f.wrong('image', 'an image reference such as registry.example.com/team/app:1.0');
      }
      if (f.has('mediaType')) f.string('mediaType');
      const blobs = f.array('blobs', 0, LIMITS.blobsPerImage);
      for (let j = 0; j < blobs.length; j++) {
        const b = blobs[j];
        if (!isObject(b)) f.wrong(`blobs[${j}]`, 'an object { sha256, size }', b);
        const bf = new Fields(b as Obj, 'blobs', f, j);
        bf.only(BLOB_FIELDS);
        bf.sha256('sha256');
        bf.size('size');
      }
      break;
    }
  }
  return value as unknown as Artifact;
}

/** One digest must mean one size across the whole manifest. */
function checkConsistentSizes(artifacts: Artifact[]): void {
  // success path: one number per digest; the places are worked out only for the message
  const sizes = new Map<string, number>();
  const note = (ref: BlobRef, i: number, j: number): void => {
    const known = sizes.get(ref.sha256);
    if (known === undefined) sizes.set(ref.sha256, ref.size);
    else if (known !== ref.size) {
      throw new AirlockError(
        'EMANIFEST',
        `${place(i, j)}: sha256 ${ref.sha256} has size ${ref.size} but ${firstPlace(artifacts, ref.sha256)} gives it size ${known}`,
        { sha256: ref.sha256 },
      );
    }
  };
  for (let i = 0; i < artifacts.length; i++) {
    const a = artifacts[i]!;
    note(a, i, -1);
    if (a.kind === 'oci-image') for (let j = 0; j < a.blobs.length; j++) note(a.blobs[j]!, i, j);
  }
}

const place = (i: number, j: number): string => (j < 0 ? `artifacts[${i}]` : `artifacts[${i}].blobs[${j}]`);

/** Where `sha256` first appears, in the order checkConsistentSizes walks. */
function firstPlace(artifacts: Artifact[], sha256: string): string {
  for (let i = 0; i < artifacts.length; i++) {
    const a = artifacts[i]!;
    if (a.sha256 === sha256) return place(i, -1);
    if (a.kind === 'oci-image') {
      for (let j = 0; j < a.blobs.length; j++) if (a.blobs[j]!.sha256 === sha256) return place(i, j);
    }
  }
  return 'another reference';
}

/** The release manifest's schema (docs/manifest.md, manifests/types.ts). EMANIFEST / EPATH with the place. */
export function validateReleaseManifest(value: unknown): ReleaseManifest {
  if (!isObject(value)) throw new AirlockError('EMANIFEST', `manifest: expected a JSON object, found ${describe(value)}`);
  const f = new Fields(value, 'manifest');
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
  const f = new Fields(value, 'root');
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
    const k = new Fields(entry as Obj, `root.keys.${id.slice(0, 16)}…`);
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
