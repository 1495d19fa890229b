/**
 * A RubyGems source (`gem install --source http://cache/gems/R/`, a Gemfile's
 * `source "…"`) for one release, written in TypeScript from the gemspecs
 * read out of the stored, verified .gem blobs (gem-spec.ts). No Ruby on the
 * cache node. Built once per release manifest digest and kept in memory
 * (a few KiB per gem), like the apt index.
 *
 * Two index formats, because the two clients want different ones:
 * - the Marshal index (RubyGems' own, what `gem generate_index` writes):
 *   `specs.4.8.gz`, `latest_specs.4.8.gz`, `prerelease_specs.4.8.gz` (Marshal
 *   arrays of `[name, Gem::Version, platform]`) and
 *   `quick/Marshal.4.8/NAME-VERSION.gemspec.rz` (zlib of the Marshal of the
 *   Gem::Specification, whose `_dump` is the 19-field array of
 *   specification.rb); `gem fetch`, and `gem install` for each spec it picks;
 * - the compact index (`versions`, `names`, `info/NAME`): what bundler
 *   prefers and `gem install` resolves with. `versions` names each gem's
 *   versions and the MD5 of its `info` file; `info` lines carry the runtime
 *   dependencies and the .gem's sha256 (the manifest's, so bundler checks the
 *   same digest airlock verified), and every file's ETag is its quoted MD5,
 *   which bundler checks after each (ranged) update.
 */
import { createHash } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';
import { AirlockError } from '../../manifests/errors.js';
import type { GemArtifact } from '../../manifests/types.js';
import type { Store, StoredRelease } from '../../storage/index.js';
import { readGemSpec, type GemSpec, type Requirement } from './gem-spec.js';
import { marshalDump, rb, type RubyValue } from './ruby-marshal.js';

export interface GemIndexFile {
  body: Buffer;
  type: string;
  etag: string;
}

export interface GemIndex {
  /** index files by their path under the source: `specs.4.8.gz`, `info/rack`, `quick/Marshal.4.8/rack-2.2.8.gemspec.rz`, … */
  files: Map<string, GemIndexFile>;
  /** `gems/NAME-VERSION[-PLATFORM].gem` → the artifact holding it */
  gems: Map<string, GemArtifact>;
}

/** Gem::Version#<=>, from version.rb: numeric segments above string ones, trailing zeros ignored. */
export function compareGemVersions(a: string, b: string): number {
  const canonical = (v: string): Array<number | string> => {
    const segs = (v.trim().replace(/-/g, '.pre.').match(/[0-9]+|[a-z]+/gi) ?? []).map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    const at = segs.findIndex((s) => typeof s === 'string');
    const parts = at < 0 ? [segs, []] : [segs.slice(0, at), segs.slice(at)];
    return parts.flatMap((p) => {
      let end = p.length;
      while (end > 0 && p[end - 1] === 0) end--;
      return p.slice(0, end);
    });
  };
  const l = canonical(a);
  const r = canonical(b);
  for (let i = 0; i < Math.max(l.length, r.length); i++) {
    const x = l[i] ?? 0;
    const y = r[i] ?? 0;
    if (x === y) continue;
    if (typeof x === 'string' && typeof y === 'number') return -1;
    if (typeof x === 'number' && typeof y === 'string') return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

export const isPrerelease = (version: string): boolean => /[a-zA-Z]/.test(version);

/** `NAME-VERSION`, or `NAME-VERSION-PLATFORM` for a platform gem (Gem::Specification#original_name) */
export const fullName = (s: Pick<GemSpec, 'name' | 'version' | 'platform'>): string =>
  s.platform === 'ruby' ? `${s.name}-${s.version}` : `${s.name}-${s.version}-${s.platform}`;

const version = (v: string): RubyValue => rb.userMarshal('Gem::Version', [v]);
const requirement = (r: Requirement): RubyValue => rb.userMarshal('Gem::Requirement', [r.map(([op, v]) => [op, version(v)])]);

/** The bytes of `quick/Marshal.4.8/<full name>.gemspec.rz` before deflating: `Marshal.dump(spec)`. */
export function marshalSpec(s: GemSpec): Buffer {
  const fields: RubyValue[] = [
    s.rubygemsVersion,
    s.specificationVersion,
    s.name,
    version(s.version),
    s.date, // a "YYYY-MM-DD" string: Gem::Specification#date= takes it as that day, UTC
    s.summary,
    requirement(s.requiredRubyVersion),
    requirement(s.requiredRubygemsVersion),
    s.platform,
    s.dependencies.map((d) =>
      rb.object('Gem::Dependency', [
        ['@name', d.name],
        ['@requirement', requirement(d.requirement)],
        ['@type', rb.sym(d.type)],
        ['@prerelease', false],
      ]),
    ),
    '', // rubyforge_project
    s.email,
    s.authors,
    s.description,
    s.homepage,
    true, // has_rdoc
    s.platform, // new_platform: a String matches like a Gem::Platform (Gem::Platform#=~ parses it)
    s.licenses,
    rb.hash(s.metadata.map(([k, v]) => [k, v])),
  ];
  return marshalDump(rb.userDef('Gem::Specification', marshalDump(fields)));
}

const byNameVersion = (a: GemSpec, b: GemSpec): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : compareGemVersions(a.version, b.version) || (a.platform === 'ruby' ? -1 : 0) - (b.platform === 'ruby' ? -1 : 0);

/** `Marshal.dump([[name, Gem::Version, platform], …])` */
export function marshalSpecList(specs: GemSpec[]): Buffer {
  return marshalDump(specs.map((s) => [s.name, version(s.version), s.platform]));
}

const reqString = (r: Requirement): string => r.map(([op, v]) => `${op} ${v}`).join('&');
const isDefault = (r: Requirement): boolean => r.length === 0 || (r.length === 1 && r[0]![0] === '>=' && compareGemVersions(r[0]![1], '0') === 0);

/** One line of `info/NAME`: `VERSION[-PLATFORM] dep:req&req,…|checksum:HEX[,ruby:req][,rubygems:req]` */
export function infoLine(s: GemSpec, sha256: string): string {
  const deps = s.dependencies
    .filter((d) => d.type === 'runtime')
    .map((d) => `${d.name}:${reqString(d.requirement)}`)
    .join(',');
  const reqs = [`checksum:${sha256}`];
  if (!isDefault(s.requiredRubyVersion)) reqs.push(`ruby:${reqString(s.requiredRubyVersion)}`);
  if (!isDefault(s.requiredRubygemsVersion)) reqs.push(`rubygems:${reqString(s.requiredRubygemsVersion)}`);
  const v = s.platform === 'ruby' ? s.version : `${s.version}-${s.platform}`;
  return `${v} ${deps}|${reqs.join(',')}`;
}

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
const TEXT = 'text/plain; charset=utf-8';

/** Every index file of the source, from the gems' specs (each with the artifact it came from). */
export function buildGemIndexFiles(gems: Array<{ spec: GemSpec; artifact: GemArtifact }>, createdAt: Date): GemIndex {
  const files = new Map<string, GemIndexFile>();
  const byPath = new Map<string, GemArtifact>();
  const marshalFile = (path: string, body: Buffer, type: string): void => {
    files.set(path, { body, type, etag: `"sha256:${createHash('sha256').update(body).digest('hex')}"` });
  };
  // the compact index's ETag is the file's MD5: bundler checks it after every download
  const compactFile = (path: string, text: string): void => {
    const body = Buffer.from(text, 'utf8');
    files.set(path, { body, type: TEXT, etag: `"${md5(body)}"` });
  };

  const specs: GemSpec[] = [];
  const sha = new Map<GemSpec, string>();
  for (const { spec, artifact } of gems) {
    const name = fullName(spec);
    const held = byPath.get(`gems/${name}.gem`);
    if (held) {
      if (held.sha256 === artifact.sha256) continue;
      throw new AirlockError('EMANIFEST', `two different gems in the release are both ${name} (${held.path}, ${artifact.path})`, { gem: name });
    }
    byPath.set(`gems/${name}.gem`, artifact);
    specs.push(spec);
    sha.set(spec, artifact.sha256);
    marshalFile(`quick/Marshal.4.8/${name}.gemspec.rz`, deflateSync(marshalSpec(spec)), 'application/octet-stream');
  }
  specs.sort(byNameVersion);

  const released = specs.filter((s) => !isPrerelease(s.version));
  const prerelease = specs.filter((s) => isPrerelease(s.version));
  const latest = new Map<string, GemSpec>();
  for (const s of released) latest.set(`${s.name}\0${s.platform}`, s); // sorted: the last one is the highest
  for (const [name, list] of [
    ['specs', released],
    ['latest_specs', [...latest.values()]],
    ['prerelease_specs', prerelease],
  ] as Array<[string, GemSpec[]]>) {
    const body = marshalSpecList(list);
    marshalFile(`${name}.4.8`, body, 'application/octet-stream');
    marshalFile(`${name}.4.8.gz`, gzipSync(body, { level: 9 }), 'application/gzip');
  }

  const names = [...new Set(specs.map((s) => s.name))];
  const versionLines: string[] = [];
  for (const name of names) {
    const mine = specs.filter((s) => s.name === name);
    const info = `---\n${mine.map((s) => `${infoLine(s, sha.get(s)!)}\n`).join('')}`;
    compactFile(`info/${name}`, info);
    const versions = mine.map((s) => (s.platform === 'ruby' ? s.version : `${s.version}-${s.platform}`)).join(',');
    versionLines.push(`${name} ${versions} ${md5(Buffer.from(info, 'utf8'))}\n`);
  }
  compactFile('names', `---\n${names.map((n) => `${n}\n`).join('')}`);
  compactFile('versions', `created_at: ${createdAt.toISOString().replace(/\.\d{3}Z$/, 'Z')}\n---\n${versionLines.join('')}`);
  return { files, gems: byPath };
}

export async function buildGemIndex(store: Store, rel: StoredRelease): Promise<GemIndex> {
  const gems: Array<{ spec: GemSpec; artifact: GemArtifact }> = [];
  for (const a of rel.manifest.artifacts) {
    if (a.kind !== 'gem') continue;
    gems.push({ spec: await readGemSpec(store, a.sha256, a.size, `gem ${a.path} of release ${rel.release}`), artifact: a });
  }
  const issued = new Date(rel.manifest.issued);
  return buildGemIndexFiles(gems, Number.isNaN(issued.getTime()) ? new Date(0) : issued);
}

/** Gem sources keyed by release and manifest digest, built on first use; a failed build is retried next time. */
export function gemIndexCache(store: Store) {
  const cache = new Map<string, Promise<GemIndex>>();
  return (rel: StoredRelease): Promise<GemIndex> => {
    const key = `${rel.release}\0${rel.digest}`;
    let p = cache.get(key);
    if (!p) {
      p = buildGemIndex(store, rel);
      cache.set(key, p);
      p.catch(() => cache.delete(key));
    }
    return p;
  };
}
