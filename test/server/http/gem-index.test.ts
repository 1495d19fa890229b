/**
 * The gem source written in TypeScript against RubyGems itself: the same
 * real gems are indexed by `gem generate_index`, and Ruby loads both sets of
 * Marshal files and compares them (equal spec lists, equal gemspecs). The
 * compact index is checked line by line.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAirlockError } from '../../../manifests/errors.js';
import type { Store, StoredRelease } from '../../../storage/index.js';
import { buildGemIndex, compareGemVersions, gemIndexCache, infoLine, type GemIndex } from '../../../server/http/gem-index.js';
import { readGemSpec } from '../../../server/http/gem-spec.js';
import { buildGems, stageGems, type BuiltGem } from './gem-fixture.js';

const haveGem = (() => {
  try {
    execFileSync('gem', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!haveGem && process.env.CI === 'true') throw new Error('gem is not installed (CI=true makes this a failure): run scripts/setup.sh (package ruby)');

let dir: string;
let gems: BuiltGem[];
let store: Store;
let rel: StoredRelease;
let index: GemIndex;

beforeAll(async () => {
  ({ dir, gems } = buildGems());
  store = await stageGems(dir, gems);
  rel = (await store.listReleases())[0]!;
  index = await buildGemIndex(store, rel);
}, 60_000);

afterAll(async () => {
  await store?.close();
});

describe.skipIf(!haveGem)('the gem source built from stored gems', () => {
  it('reads each gemspec out of the stored .gem', async () => {
    const top = gems.find((g) => g.name === 'gtop')!;
    const spec = await readGemSpec(store, top.sha256, top.size, 'gtop');
    expect(spec).toMatchObject({ name: 'gtop', version: '0.3.0', platform: 'ruby', authors: ['T'], licenses: ['MIT'], email: 't@x.test' });
    expect(spec.dependencies).toEqual([
      { name: 'gbase', requirement: [['~>', '1.0'], ['>=', '1.1']], type: 'runtime' },
      { name: 'rake', requirement: [['>=', '0']], type: 'development' },
    ]);
  });

  it("Ruby loads our Marshal files as equal to `gem generate_index`'s", () => {
    const ours = join(dir, 'ours');
    const theirs = join(dir, 'theirs');
    for (const [path, f] of index.files) {
      mkdirSync(dirname(join(ours, path)), { recursive: true });
      writeFileSync(join(ours, path), f.body);
    }
    mkdirSync(join(theirs, 'gems'), { recursive: true });
    for (const g of gems) cpSync(g.file, join(theirs, 'gems', `${g.name}-${g.version}.gem`));
    execFileSync('gem', ['generate_index', '--directory', theirs], { stdio: 'ignore', env: { ...process.env, HOME: dir } });
    const script = `
      require "rubygems"; require "zlib"; require "json"
      ours, theirs, names = ARGV[0], ARGV[1], ARGV[2].split(",")
      out = {}
      %w[specs latest_specs prerelease_specs].each do |n|
        a = Marshal.load(Zlib.gunzip(File.binread("#{ours}/#{n}.4.8.gz")))
        b = Marshal.load(Zlib.gunzip(File.binread("#{theirs}/#{n}.4.8.gz")))
        out[n] = { "equal" => a == b, "ours" => a.map { |x| x.map(&:to_s) } }
      end
      names.each do |g|
        a = Marshal.load(Zlib.inflate(File.binread("#{ours}/quick/Marshal.4.8/#{g}.gemspec.rz")))
        b = Marshal.load(Zlib.inflate(File.binread("#{theirs}/quick/Marshal.4.8/#{g}.gemspec.rz")))
        out[g] = { "class" => a.class.name, "equal" => a == b, "same_ruby" => a.to_ruby == b.to_ruby,
                   "deps" => a.dependencies.map(&:to_s), "date" => a.date.to_s, "ruby" => a.required_ruby_version.to_s }
      end
      puts JSON.generate(out)`;
    const names = gems.map((g) => `${g.name}-${g.version}`);
    const out = JSON.parse(execFileSync('ruby', ['-e', script, ours, theirs, names.join(',')], { encoding: 'utf8' })) as Record<string, Record<string, unknown>>;
    expect(out.specs).toEqual({ equal: true, ours: [['gbase', '1.2.0', 'ruby'], ['gtop', '0.3.0', 'ruby']] });
    expect(out.latest_specs).toEqual({ equal: true, ours: [['gbase', '1.2.0', 'ruby'], ['gtop', '0.3.0', 'ruby']] });
    expect(out.prerelease_specs).toEqual({ equal: true, ours: [['gbase', '2.0.0.pre1', 'ruby']] });
    for (const n of names) expect(out[n], n).toMatchObject({ class: 'Gem::Specification', equal: true, same_ruby: true });
    expect(out['gtop-0.3.0']).toMatchObject({ deps: ['gbase (~> 1.0, >= 1.1)', 'rake (>= 0, development)'], date: '2023-11-14 00:00:00 UTC' });
    expect(out['gbase-1.2.0']).toMatchObject({ ruby: '>= 2.5' });
  });

  it('compact index: versions, names and info with the .gem sha256 and MD5 ETags', () => {
    const text = (p: string): string => index.files.get(p)!.body.toString('utf8');
    const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
    const sha = (name: string, version: string): string => gems.find((g) => g.name === name && g.version === version)!.sha256;
    expect(text('names')).toBe('---\ngbase\ngtop\n');
    expect(text('info/gbase')).toBe(`---\n1.2.0 |checksum:${sha('gbase', '1.2.0')},ruby:>= 2.5\n2.0.0.pre1 |checksum:${sha('gbase', '2.0.0.pre1')},rubygems:> 1.3.1\n`);
    expect(text('info/gtop')).toBe(`---\n0.3.0 gbase:~> 1.0&>= 1.1|checksum:${sha('gtop', '0.3.0')}\n`);
    expect(text('versions')).toMatch(/^created_at: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n---\n/);
    expect(text('versions').split('---\n')[1]).toBe(
      `gbase 1.2.0,2.0.0.pre1 ${md5(text('info/gbase'))}\ngtop 0.3.0 ${md5(text('info/gtop'))}\n`,
    );
    for (const p of ['versions', 'names', 'info/gbase', 'info/gtop']) expect(index.files.get(p)!.etag).toBe(`"${md5(text(p))}"`);
    expect([...index.gems.keys()].sort()).toEqual(['gems/gbase-1.2.0.gem', 'gems/gbase-2.0.0.pre1.gem', 'gems/gtop-0.3.0.gem']);
  });

  it('is built once per release and shared by concurrent callers', async () => {
    const cached = gemIndexCache(store);
    const [a, b] = await Promise.all([cached(rel), cached(rel)]);
    expect(a).toBe(b);
    expect(await cached(rel)).toBe(a);
  });

  it('a blob that is not a gem is EINTEGRITY in one line naming it', async () => {
    const bogus = Buffer.from('not a gem at all, just text\n'.repeat(40));
    const sha256 = createHash('sha256').update(bogus).digest('hex');
    const { Readable } = await import('node:stream');
    await store.ingestStream({ sha256, size: bogus.length }, Readable.from([bogus]));
    const err = await readGemSpec(store, sha256, bogus.length, 'gem gems/bogus-1.0.gem of release 3.6.2').catch((e: unknown) => e);
    expect(isAirlockError(err, 'EINTEGRITY'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/^gem gems\/bogus-1\.0\.gem of release 3\.6\.2: not a gem/);
    expect((err as Error).message).not.toMatch(/\n/);
  });
});

describe('Gem::Version ordering and info lines', () => {
  it('orders versions as RubyGems does', () => {
    // what Ruby answers for `%w[…].map { Gem::Version.new(_1) }.sort`
    const sorted = ['1.0', '1.0.0.pre', '0.9.10', '1.0.a', '0.9.9', '1.10', '1.9.1', '1.0.1'].sort(compareGemVersions);
    expect(sorted).toEqual(['0.9.9', '0.9.10', '1.0.a', '1.0.0.pre', '1.0', '1.0.1', '1.9.1', '1.10']);
    expect(compareGemVersions('1.0.0', '1')).toBe(0);
  });

  it('a platform gem names its platform in the version', () => {
    const spec = {
      name: 'n', version: '1.0', platform: 'x86_64-linux', rubygemsVersion: '3.3.15', specificationVersion: 4, date: '2024-01-01',
      summary: '', description: '', email: null, authors: [], homepage: null, licenses: [], metadata: [],
      requiredRubyVersion: [['>=', '0']] as Array<[string, string]>, requiredRubygemsVersion: [['>', '1.3.1']] as Array<[string, string]>, dependencies: [],
    };
    expect(infoLine(spec, 'ab')).toBe('1.0-x86_64-linux |checksum:ab,rubygems:> 1.3.1');
  });
});

