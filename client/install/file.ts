/**
 * `file` artifacts: `install.extract` unpacks a tar/tar.gz under the root,
 * `install.copy` places the file itself. What each install wrote is kept in
 * `STATE/written/` so the next one can tell an operator's local change
 * (backed up beside the file and listed) from our own earlier write.
 */
import { rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { AirlockError } from '../../manifests/errors.js';
import type { FileArtifact } from '../../manifests/types.js';
import { readJson, writeStateFile, writtenFile } from '../state.js';
import { backupSuffix, materialize, underRoot, type InstallContext, type StepOutcome } from './context.js';
import { runCommand } from './exec.js';
import { createNew, diskNode, Fence, tempIn } from './fence.js';
import { backupIfChanged, extractTar, replaceWith, Undo } from './tar.js';

interface WrittenRecord {
  target: string;
  release: string;
  files: Record<string, string>;
}

export async function installFile(ctx: InstallContext, a: FileArtifact): Promise<StepOutcome> {
  const where = a.path;
  const spec = a.install;
  if (!spec || (!spec.extract && !spec.copy)) return { note: 'staged only (no install target in the manifest)' };
  if (spec.extract && spec.copy) {
    throw new AirlockError('EUSAGE', `${where}: install has both "extract" and "copy"; the manifest must say one`, { path: where });
  }
  const target = underRoot(ctx.root, (spec.extract ?? spec.copy)!, where);
  if (ctx.commands.file) {
    // the override writes there itself: at least its folder must not lead out
    await (await Fence.of(ctx.root)).resolve(dirname(target), where);
    const staged = await materialize(ctx, a.sha256, a.size, `file-${a.sha256.slice(0, 16)}`);
    try {
      await runCommand([...ctx.commands.file, staged, target], { where });
    } finally {
      await rm(staged, { force: true });
    }
    return { note: `installed by ${ctx.commands.file[0]} to ${target}` };
  }
  const recordPath = writtenFile(ctx.state, target);
  const previous = readJson<WrittenRecord>(recordPath)?.files ?? {};
  const suffix = backupSuffix(ctx.now);
  let written: Record<string, string>;
  let backups: string[];
  if (spec.extract) {
    ({ written, backups } = await extractTar(() => ctx.source.read(a.sha256), { target, fence: ctx.root, where, previous, backupSuffix: suffix }));
  } else {
    ({ written, backups } = await copyTo(ctx, a, target, previous['.'], suffix));
  }
  writeStateFile(recordPath, `${JSON.stringify({ target, release: ctx.release, files: written } satisfies WrittenRecord)}\n`);
  for (const b of backups) ctx.out.warn(`${where}: ${b.replace(/\.airlock-bak-[^/]*$/, '')} was changed locally; kept as ${b}`, { backup: b });
  const n = Object.keys(written).length;
  return {
    note: `${spec.extract ? `extracted ${n} file(s) to` : 'copied to'} ${target}${backups.length ? `; ${backups.length} local change(s) backed up` : ''}`,
    backups,
  };
}

async function copyTo(
  ctx: InstallContext,
  a: FileArtifact,
  target: string,
  before: string | undefined,
  suffix: string,
): Promise<{ written: Record<string, string>; backups: string[] }> {
  const mode = a.install?.mode ? parseInt(a.install.mode, 8) : 0o644;
  if (Number.isNaN(mode) || mode < 0 || mode > 0o7777) {
    throw new AirlockError('EUSAGE', `${a.path}: install.mode "${a.install?.mode}" is not an octal mode such as 0755`, { path: a.path });
  }
  const fence = await Fence.of(ctx.root);
  const undo = new Undo();
  try {
    const { real: dest, created } = await fence.place(target, a.path);
    undo.made(created, true);
    if ((await diskNode(dest))?.kind === 'dir') {
      throw new AirlockError('EPATH', `${a.path}: "${dest}" is a folder; install.copy names the file to write`, { dest });
    }
    const tmp = tempIn(dirname(dest), basename(dest));
    try {
      const fh = await createNew(tmp);
      try {
        for await (const chunk of await ctx.source.read(a.sha256)) await fh.write(chunk as Buffer);
        await fh.chmod(mode);
        await fh.sync();
      } finally {
        await fh.close();
      }
      const bak = await replaceWith(tmp, dest, undo, () => backupIfChanged(dest, before, a.sha256, suffix));
      await undo.commit();
      return { written: { '.': a.sha256 }, backups: bak ? [bak] : [] };
    } finally {
      await rm(tmp, { force: true });
    }
  } catch (e) {
    await undo.rollback();
    throw e;
  }
}
