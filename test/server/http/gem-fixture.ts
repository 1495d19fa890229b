/**
 * Real gems built with `gem build` from tiny gemspecs — `gbase` 1.2.0 and
 * 2.0.0.pre1, `gtop` 0.3.0 depending on `gbase ~> 1.0, >= 1.1` (and on rake
 * for development only) — staged as one signed release in a fresh store.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTrustedRoot, verifyRelease } from '../../../manifests/index.js';
import type { GemArtifact, ReleaseManifest } from '../../../manifests/index.js';
import { openStore, type Store } from '../../../storage/index.js';
import { makeTrust, signRelease } from '../../../scripts/world/keys.js';

export interface BuiltGem {
  name: string;
  version: string;
  file: string;
  sha256: string;
  size: number;
}

const SPECS: Array<{ name: string; version: string; extra: string; code: string }> = [
  { name: 'gbase', version: '1.2.0', extra: 's.required_ruby_version = ">= 2.5"', code: 'module Gbase; VERSION = "1.2.0"; end' },
  { name: 'gbase', version: '2.0.0.pre1', extra: '', code: 'module Gbase; VERSION = "2.0.0.pre1"; end' },
  {
    name: 'gtop',
    version: '0.3.0',
    extra: 's.add_dependency "gbase", "~> 1.0", ">= 1.1"; s.add_development_dependency "rake", ">= 0"; s.email = "t@x.test"; s.homepage = "https://x.test"; s.metadata = { "homepage_uri" => "https://x.test" }',
    code: 'require "gbase"; module Gtop; def self.hello = "gtop 0.3.0 on gbase #{Gbase::VERSION}"; end',
  },
];

/** Builds the gems in a temp dir (a fixed SOURCE_DATE_EPOCH: the same bytes every time). */
export function buildGems(): { dir: string; gems: BuiltGem[] } {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gems-'));
  const gems = SPECS.map((g) => {
    const src = join(dir, `src-${g.name}-${g.version}`);
    mkdirSync(join(src, 'lib'), { recursive: true });
    writeFileSync(join(src, 'lib', `${g.name}.rb`), `${g.code}\n`);
    writeFileSync(
      join(src, `${g.name}.gemspec`),
      `Gem::Specification.new { |s| s.name = "${g.name}"; s.version = "${g.version}"; s.summary = "tiny"; s.authors = ["T"]\n` +
        `  s.license = "MIT"; s.files = ["lib/${g.name}.rb"]; ${g.extra} }\n`,
    );
    const file = join(dir, `${g.name}-${g.version}.gem`);
    execFileSync('gem', ['build', `${g.name}.gemspec`, '--output', file], {
      cwd: src,
      stdio: 'ignore',
      env: { ...process.env, SOURCE_DATE_EPOCH: '1700000000', HOME: dir },
    });
    const bytes = readFileSync(file);
    return { name: g.name, version: g.version, file, sha256: createHash('sha256').update(bytes).digest('hex'), size: statSync(file).size };
  });
  return { dir, gems };
}

export const gemArtifact = (g: BuiltGem): GemArtifact => ({
  kind: 'gem',
  path: `gems/${g.name}-${g.version}.gem`,
  sha256: g.sha256,
  size: g.size,
  gem: g.name,
  version: g.version,
  urls: [`http://gems.upstream.test/gems/${g.name}-${g.version}.gem`],
});

/** A store under `dir/cache` holding release `release` with these gems, signed and verified. */
export async function stageGems(dir: string, gems: BuiltGem[], release = '3.6.2'): Promise<Store> {
  const trust = makeTrust(join(dir, 'keys'));
  const now = new Date();
  const payload: ReleaseManifest = {
    type: 'airlock-release', spec: 1, product: 'stackato', release, serial: 17,
    issued: new Date(now.getTime() - 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    expires: new Date(now.getTime() + 30 * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    artifacts: gems.map(gemArtifact),
  };
  const root = loadTrustedRoot(await readFile(trust.rootJsonPath), now);
  const verified = verifyRelease(signRelease(payload, trust), { root, now });
  const store = await openStore({ cacheDir: join(dir, 'cache'), write: true });
  for (const g of gems) await store.ingestStream({ sha256: g.sha256, size: g.size }, createReadStream(g.file));
  await store.putRelease(verified);
  return store;
}
