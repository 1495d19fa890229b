/**
 * `gem` artifacts: `gem install --local` from the staged file, one per step
 * in manifest order, into the root's gem home (`ROOT/var/lib/gems`; the
 * system's default gem home when the root is `/`).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { GemArtifact } from '../../manifests/types.js';
import { materialize, type InstallContext, type StepOutcome } from './context.js';
import { runCommand } from './exec.js';

export const gemHome = (root: string): string | null => (root === '/' ? null : join(root, 'var', 'lib', 'gems'));

export async function installGem(ctx: InstallContext, g: GemArtifact): Promise<StepOutcome> {
  const home = gemHome(ctx.root);
  const env: NodeJS.ProcessEnv = { ...process.env };
  const args = ctx.commands.gem ? [...ctx.commands.gem] : ['gem', 'install', '--local', '--no-document'];
  if (home) {
    await mkdir(home, { recursive: true });
    if (!ctx.commands.gem) args.push('--install-dir', home, '--bindir', join(home, 'bin'));
    env.GEM_HOME = home;
    env.GEM_PATH = home;
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
