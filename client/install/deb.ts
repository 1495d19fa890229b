/**
 * `deb` artifacts: one dpkg call for all debs of the release, so packages
 * that depend on each other install together. Into `--root` with its own
 * admin dir and log (the real system only when the root is `/`).
 *
 * `dpkg --root` is not a chroot: it follows links already in the root as the
 * host sees them. So before dpkg runs, its admin dir, its log and every
 * folder the packages install into are resolved through the fence: a link
 * there leading out of the root is EPATH and dpkg never starts.
 */
import { spawn } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { extract as tarExtract } from 'tar-stream';
import { AirlockError } from '../../manifests/errors.js';
import type { DebArtifact } from '../../manifests/types.js';
import { materialize, type InstallContext, type StepOutcome } from './context.js';
import { runCommand } from './exec.js';
import { createNew, Fence } from './fence.js';

/** The dpkg argv for a root; an alternate root gets its admin dir created, inside the root. */
export async function dpkgArgs(root: string, where = 'dpkg'): Promise<string[]> {
  if (root === '/') return ['dpkg'];
  const fence = await Fence.of(root);
  const { real: admin } = await fence.mkdir(join(root, 'var', 'lib', 'dpkg'), where);
  const dirs = [admin];
  for (const d of ['info', 'updates', 'triggers']) dirs.push((await fence.mkdir(join(admin, d), where)).real);
  // dpkg's database holds no links; one there would be followed by dpkg itself
  for (const d of dirs) {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isSymbolicLink()) await fence.expectKind(join(d, e.name), 'file', where);
    }
  }
  const { real: logDir } = await fence.mkdir(join(root, 'var', 'log'), where);
  const log = join(logDir, 'dpkg.log');
  await fence.expectKind(log, 'file', where);
  const status = join(admin, 'status');
  await fence.expectKind(status, 'file', where);
  await createNew(status, 0o644).then((fh) => fh.close(), (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
  const args = ['dpkg', `--root=${root}`, `--admindir=${admin}`, `--log=${log}`];
  // an alternate root holds no base system in its dpkg database, so the
  // debs' dependencies on libc and friends cannot be satisfied there
  args.push('--force-depends');
  if (process.getuid?.() !== 0) args.push('--force-not-root');
  return args;
}

/** The paths a deb installs (its data archive's entry names, `./` stripped). */
function debPaths(file: string, where: string): Promise<string[]> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('dpkg-deb', ['--fsys-tarfile', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
    const names: string[] = [];
    const ex = tarExtract();
    ex.on('entry', (h, body, next) => {
      names.push(posix.normalize(h.name).replace(/^(\.\/|\/)+/, '').replace(/\/+$/, ''));
      body.on('end', next);
      body.resume();
    });
    let listed = false;
    ex.on('finish', () => (listed = true));
    ex.on('error', () => {}); // the exit status below says what went wrong
    child.stdout.pipe(ex);
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(new AirlockError('EINTERNAL', `${where}: dpkg-deb ${e.code === 'ENOENT' ? 'not found' : e.message}`, { file })),
    );
    child.on('close', (code) => {
      if (code === 0 && listed) return resolvePromise(names.filter((n) => n !== '' && n !== '.'));
      const last = stderr.trim().split('\n').slice(-1)[0] ?? '';
      reject(new AirlockError('EINTEGRITY', `${where}: dpkg-deb cannot read ${posix.basename(file)}: ${last || `exit ${code}`}`, { file }));
    });
  });
}

/** Every folder a deb writes into must resolve inside the root as it is on disk now. */
async function checkDebFolders(root: string, files: readonly string[], where: string): Promise<void> {
  const fence = await Fence.of(root);
  const folders = new Set<string>();
  for (const f of files) {
    for (const name of await debPaths(f, where)) {
      for (let d = posix.dirname(name); d !== '.' && !folders.has(d); d = posix.dirname(d)) folders.add(d);
    }
  }
  for (const d of [...folders].sort()) await fence.resolve(join(root, ...d.split('/')), where);
}

export async function installDebs(ctx: InstallContext, debs: DebArtifact[]): Promise<StepOutcome> {
  const where = debs.length === 1 ? debs[0]!.path : `${debs.length} debs (${debs.map((d) => d.package).join(', ')})`;
  const files: string[] = [];
  try {
    for (const d of debs) files.push(await materialize(ctx, d.sha256, d.size, `${d.package}_${d.version}_${d.arch}.deb`.replace(/[^A-Za-z0-9._+~-]/g, '_')));
    let base: string[];
    if (ctx.commands.deb) base = [...ctx.commands.deb];
    else {
      base = [...(await dpkgArgs(ctx.root, where)), '-i'];
      if (ctx.root !== '/') await checkDebFolders(ctx.root, files, where);
    }
    await runCommand([...base, ...files], { where });
  } finally {
    await Promise.all(files.map((f) => rm(f, { force: true })));
  }
  return { note: `dpkg installed ${debs.map((d) => `${d.package} ${d.version}`).join(', ')}` };
}
