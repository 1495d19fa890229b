import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gemHome, installGem } from '../../../client/install/gem.js';
import { isAirlockError } from '../../../manifests/errors.js';
import type { GemArtifact } from '../../../manifests/types.js';
import { context, failure, sandbox } from './hostile.js';

// a real gem built with `gem build`
let gem: Buffer;
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-gemsrc-'));
  mkdirSync(join(dir, 'lib'));
  writeFileSync(join(dir, 'lib', 'airlock_hello.rb'), 'module AirlockHello; end\n');
  writeFileSync(
    join(dir, 'airlock_hello.gemspec'),
    `Gem::Specification.new do |s|\n  s.name = 'airlock_hello'\n  s.version = '1.0.0'\n  s.summary = 'test'\n  s.authors = ['t']\n  s.license = 'MIT'\n  s.files = ['lib/airlock_hello.rb']\nend\n`,
  );
  execFileSync('gem', ['build', 'airlock_hello.gemspec'], { cwd: dir, stdio: 'ignore' });
  gem = readFileSync(join(dir, 'airlock_hello-1.0.0.gem'));
});

const artifact = (ctx: ReturnType<typeof context>): GemArtifact => ({
  kind: 'gem',
  path: 'gems/airlock_hello-1.0.0.gem',
  urls: [],
  sha256: ctx.add(gem),
  size: gem.length,
  gem: 'airlock_hello',
  version: '1.0.0',
});

describe('installGem into the root gem home', () => {
  it('installs a real gem under ROOT/var/lib/gems', async () => {
    const { root, state, outside } = sandbox('gem');
    const ctx = context(root, state);
    await installGem(ctx, artifact(ctx));
    expect(existsSync(join(gemHome(root)!, 'gems', 'airlock_hello-1.0.0', 'lib', 'airlock_hello.rb'))).toBe(true);
    expect(outside()).toEqual([]);
  });

  for (const [label, plant] of [
    ['ROOT/var -> ../escaped', (root: string) => symlinkSync('../escaped', join(root, 'var'))],
    ['the gem home is an absolute link out', (root: string) => {
      mkdirSync(join(root, 'var', 'lib'), { recursive: true });
      symlinkSync(join(root, '..', 'escaped'), join(root, 'var', 'lib', 'gems'));
    }],
    ['a folder gem writes into is a link out (gems/ -> ../../../../escaped)', (root: string) => {
      mkdirSync(join(root, 'var', 'lib', 'gems'), { recursive: true });
      symlinkSync('../../../../escaped', join(root, 'var', 'lib', 'gems', 'gems'));
    }],
  ] as Array<[string, (root: string) => void]>) {
    it(`refuses with EPATH when ${label}, writing nothing outside`, async () => {
      const { root, state, outside } = sandbox('gem');
      plant(root);
      const ctx = context(root, state);
      const err = await failure(installGem(ctx, artifact(ctx)));
      expect(outside()).toEqual([]);
      expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
      expect((err as Error).message).not.toMatch(/\n/);
      expect(readdirSync(root).length).toBeGreaterThan(0);
    });
  }
});
