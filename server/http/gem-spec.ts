/**
 * Reads a gem's specification out of a stored .gem, so the gem source is
 * built from the gems themselves and not from what a manifest claims.
 *
 * A .gem is a plain tar: `metadata.gz` (the gemspec as YAML, gzipped),
 * `data.tar.gz`, `checksums.yaml.gz`. Only the head of the blob is read (a
 * range), `metadata.gz` is gunzipped with a cap and its YAML parsed with the
 * `yaml` package; Ruby's `!ruby/object:Gem::…` tags come out as plain maps.
 */
import { gunzipSync } from 'node:zlib';
import { parse } from 'yaml';
import { AirlockError } from '../../manifests/errors.js';
import type { Store } from '../../storage/index.js';
import { readCapped } from './read-capped.js';

const HEAD_BYTES = 64 * 1024;
const MAX_METADATA_GZ = 4 * 1024 * 1024;
const MAX_METADATA = 16 * 1024 * 1024;

/** `[[">=", "2.7"], …]`, as Gem::Requirement holds it */
export type Requirement = Array<[string, string]>;

export interface GemDependency {
  name: string;
  requirement: Requirement;
  type: 'runtime' | 'development';
}

/** What the indexes need of a gemspec. */
export interface GemSpec {
  name: string;
  version: string;
  /** `ruby` for a pure-Ruby gem, else e.g. `x86_64-linux` */
  platform: string;
  rubygemsVersion: string;
  specificationVersion: number;
  /** YYYY-MM-DD */
  date: string;
  summary: string;
  description: string;
  email: string | string[] | null;
  authors: string[];
  homepage: string | null;
  licenses: string[];
  metadata: Array<[string, string]>;
  requiredRubyVersion: Requirement;
  requiredRubygemsVersion: Requirement;
  dependencies: GemDependency[];
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function requirementOf(v: unknown, what: string): Requirement {
  const reqs = isMap(v) ? v.requirements : undefined;
  if (reqs === undefined || reqs === null) return [['>=', '0']];
  if (!Array.isArray(reqs)) throw new Error(`${what}: requirements is not a list`);
  return reqs.map((r) => {
    if (!Array.isArray(r) || r.length !== 2) throw new Error(`${what}: a requirement is not [operator, version]`);
    const ver = isMap(r[1]) ? r[1].version : r[1];
    return [String(r[0]), String(ver)];
  });
}

/** The gemspec in a .gem's metadata YAML; throws a plain Error naming what is wrong. */
export function specFromYaml(text: string): GemSpec {
  const doc: unknown = parse(text, { logLevel: 'error', maxAliasCount: 1000, uniqueKeys: false });
  if (!isMap(doc)) throw new Error('metadata is not a gem specification');
  const name = str(doc.name);
  const version = isMap(doc.version) ? str(doc.version.version) : str(doc.version);
  if (!name || !/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`gem name ${JSON.stringify(name)} is not a gem name`);
  if (!version || !/^[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z.-]+)?$/.test(version.trim())) {
    throw new Error(`version ${JSON.stringify(version)} of gem ${name} is not a gem version`);
  }
  const platform = str(doc.platform) ?? 'ruby';
  if (!/^[A-Za-z0-9._-]+$/.test(platform)) throw new Error(`platform ${JSON.stringify(platform)} of gem ${name} is not a platform`);
  const dateMatch = /^(\d{4}-\d{2}-\d{2})/.exec(str(doc.date) ?? '');
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : v === null || v === undefined ? [] : [String(v)]);
  const deps = Array.isArray(doc.dependencies) ? doc.dependencies : [];
  return {
    name,
    version: version.trim(),
    platform: platform === '' ? 'ruby' : platform,
    rubygemsVersion: str(doc.rubygems_version) ?? '0',
    specificationVersion: Number.isInteger(doc.specification_version) ? (doc.specification_version as number) : 4,
    date: dateMatch ? dateMatch[1]! : '1980-01-02',
    summary: str(doc.summary) ?? '',
    description: str(doc.description) ?? '',
    email: Array.isArray(doc.email) ? doc.email.map(String) : str(doc.email),
    authors: list(doc.authors),
    homepage: str(doc.homepage),
    licenses: list(doc.licenses),
    metadata: isMap(doc.metadata) ? Object.entries(doc.metadata).map(([k, v]) => [k, String(v)]) : [],
    requiredRubyVersion: requirementOf(doc.required_ruby_version, 'required_ruby_version'),
    requiredRubygemsVersion: requirementOf(doc.required_rubygems_version, 'required_rubygems_version'),
    dependencies: deps.map((d: unknown, i: number) => {
      if (!isMap(d) || !str(d.name)) throw new Error(`dependency ${i} of gem ${name} has no name`);
      const type = str(d.type)?.replace(/^:/, '') === 'development' ? 'development' : 'runtime';
      return { name: str(d.name)!, requirement: requirementOf(d.requirement ?? d.version_requirements, `dependency ${str(d.name)}`), type };
    }),
  };
}

/** The gemspec of the .gem stored as `sha256` (`what` names it in errors). */
export async function readGemSpec(store: Store, sha256: string, size: number, what: string): Promise<GemSpec> {
  const bad = (why: string): AirlockError => new AirlockError('EINTEGRITY', `${what}: ${why}`, { sha256 });
  const headLen = Math.min(size, HEAD_BYTES);
  const head = headLen > 0 ? await readCapped(await store.read(sha256, { start: 0, end: headLen - 1 }), HEAD_BYTES, 'gem metadata') : Buffer.alloc(0);
  /** bytes [start, start+len) of the gem: from the head when it holds them, else a range read */
  const bytesAt = async (start: number, len: number, cap: number): Promise<Buffer> =>
    start + len <= head.length ? head.subarray(start, start + len) : readCapped(await store.read(sha256, { start, end: start + len - 1 }), cap, 'gem metadata');
  let off = 0;
  // a handful of tar members at most before metadata.gz (it is the first in every gem RubyGems builds)
  for (let i = 0; i < 8 && off + 512 <= size; i++) {
    const header = await bytesAt(off, 512, 512);
    if (header.every((b) => b === 0)) break;
    const field = (a: number, b: number): string => header.subarray(a, b).toString('latin1').replace(/\0.*$/s, '');
    if (!field(257, 263).startsWith('ustar')) throw bad('not a gem (no tar header)');
    const memberSize = parseInt(field(124, 136).trim() || '0', 8);
    if (!Number.isSafeInteger(memberSize) || memberSize < 0 || off + 512 + memberSize > size) throw bad('not a gem (bad tar member size)');
    const start = off + 512;
    if (field(0, 100) === 'metadata.gz') {
      if (memberSize > MAX_METADATA_GZ) throw bad(`metadata.gz of ${memberSize} bytes is too large`);
      const gz = await bytesAt(start, memberSize, MAX_METADATA_GZ);
      let yaml: string;
      try {
        yaml = gunzipSync(gz, { maxOutputLength: MAX_METADATA }).toString('utf8');
      } catch (e) {
        throw bad(`metadata.gz does not gunzip (${(e as Error).message})`);
      }
      try {
        return specFromYaml(yaml);
      } catch (e) {
        throw bad(`metadata: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    off = start + Math.ceil(memberSize / 512) * 512;
  }
  throw bad('not a gem (no metadata.gz)');
}
