/**
 * `deb` artifacts: one dpkg call for all debs of the release, so packages
 * that depend on each other install together. Into `--root` with its own
 * admin dir and log (DESIGN.md: the real system only when the root is `/`).
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DebArtifact } from '../../manifests/types.js';
import { materialize, type InstallContext, type StepOutcome } from './context.js';
import { runCommand } from './exec.js';

/** The dpkg argv for a root; an alternate root gets its admin dir created. */
export function dpkgArgs(root: string): string[] {
  if (root === '/') return ['dpkg'];
  const admin = join(root, 'var', 'lib', 'dpkg');
  for (const d of ['info', 'updates', 'triggers']) mkdirSync(join(admin, d), { recursive: true });
  mkdirSync(join(root, 'var', 'log'), { recursive: true });
  closeSync(openSync(join(admin, 'status'), 'a'));
  const args = ['dpkg', `--root=${root}`, `--admindir=${admin}`, `--log=${join(root, 'var', 'log', 'dpkg.log')}`];
  // an alternate root holds no base system in its dpkg database, so the
  // debs' dependencies on libc and friends cannot be satisfied there
  args.push('--force-depends');
  if (process.getuid?.() !== 0) args.push('--force-not-root');
  return args;
}

export async function installDebs(ctx: InstallContext, debs: DebArtifact[]): Promise<StepOutcome> {
  const where = debs.length === 1 ? debs[0]!.path : `${debs.length} debs (${debs.map((d) => d.package).join(', ')})`;
  const files: string[] = [];
  try {
    for (const d of debs) files.push(await materialize(ctx, d.sha256, d.size, `${d.package}_${d.version}_${d.arch}.deb`.replace(/[^A-Za-z0-9._+~-]/g, '_')));
    const base = ctx.commands.deb ? [...ctx.commands.deb] : [...dpkgArgs(ctx.root), '-i'];
    await runCommand([...base, ...files], { where });
  } finally {
    await Promise.all(files.map((f) => rm(f, { force: true })));
  }
  return { note: `dpkg installed ${debs.map((d) => `${d.package} ${d.version}`).join(', ')}` };
}
