/**
 * `gem` artifacts: `gem install --local` from the staged file, one per step
 * in manifest order, into the root's gem home (`ROOT/var/lib/gems`; the
 * system's default gem home when the root is `/`). gem follows links as the
 * host sees them, so the gem home and the folders gem writes into are
 * resolved through the fence first: a link leading out of the root is EPATH.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { GemArtifact } from '../../manifests/types.js';
import { materialize, type InstallContext, type StepOutcome } from './context.js';
import { runCommand } from './exec.js';
import { Fence } from './fence.js';

export const gemHome = (root: string): string | null => (root === '/' ? null : join(root, 'var', 'lib', 'gems'));

/** What `gem install` writes under its install dir (RubyGems' layout). */
const GEM_DIRS = ['bin', 'build_info', 'cache', 'doc', 'extensions', 'gems', 'plugins', 'specifications'];

async function fencedGemHome(root: string, home: string, g: GemArtifact): Promise<string> {
  const fence = await Fence.of(root);
  const { real } = await fence.mkdir(home, g.path);
  const full = `${g.gem}-${g.version}`;
  for (const d of GEM_DIRS) await fence.resolve(join(real, d), g.path);
  for (const p of [join('gems', full), join('specifications', `${full}.gemspec`), join('cache', `${full}.gem`)]) await fence.resolve(join(real, p), g.path);
  return real;
}

export async function installGem(ctx: InstallContext, g: GemArtifact): Promise<StepOutcome> {
  const home = gemHome(ctx.root);
  const env: NodeJS.ProcessEnv = { ...process.env };
  const args = ctx.commands.gem ? [...ctx.commands.gem] : ['gem', 'install', '--local', '--no-document'];
  if (home) {
    const real = await fencedGemHome(ctx.root, home, g);
    if (!ctx.commands.gem) args.push('--install-dir', real, '--bindir', join(real, 'bin'));
    env.GEM_HOME = real;
    env.GEM_PATH = real;
  }
  const file = await materialize(ctx, g.sha256, g.size, `${g.gem}-${g.version}.gem`.replace(/[^A-Za-z0-9._+~-]/g, '_'));
  try {
    // cwd = work dir: `--local` also looks for dependencies beside the file
    await runCommand([...args, file], { where: g.path, env, cwd: ctx.state.work });
  } finally {
    await rm(file, { force: true });
  }
  return { note: `gem ${g.gem} ${g.version} installed${home ? ` into ${home}` : ''}` };
}
