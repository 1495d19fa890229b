/**
 * The install root as a fence: every path an install step creates, opens or
 * renames is resolved here first, component by component, against the real
 * disk. A symlink on the way is followed only while where it leads stays
 * inside the real root (`realpath(--root)`); one that leads out is EPATH,
 * before anything is created. Folders are made one level at a time, so
 * `mkdir -p` never runs through a link; files are created with
 * O_EXCL|O_NOFOLLOW and renamed into a folder already resolved, so a link
 * at the final name is replaced, never written through.
 *
 * The same walk resolves names inside a tar archive against a simulated
 * namespace (tar.ts): `resolveIn` takes the lookup to use.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, readlink, realpath, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname, join, posix, sep } from 'node:path';
import { AirlockError } from '../../manifests/errors.js';

/** What a name is, as far as path resolution cares; null = nothing there. */
export type Node = { kind: 'dir' } | { kind: 'file' } | { kind: 'other' } | { kind: 'symlink'; target: string } | null;
export type Lookup = (path: string) => Promise<Node>;

/** Why a walk stopped: turned into the caller's one-line EPATH. */
export class LeadsOut extends Error {}

export const isInside = (child: string, parent: string): boolean =>
  child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);

/** The folders a resolved path passes through on its way down to `fence` are the fence's own ancestors: real folders. */
const isAncestor = (path: string, fence: string): boolean => path !== fence && isInside(fence, path);

const MAX_LINKS = 40; // as the kernel's ELOOP limit

export async function diskNode(path: string): Promise<Node> {
  try {
    const st = await lstat(path);
    if (st.isSymbolicLink()) return { kind: 'symlink', target: await readlink(path) };
    if (st.isDirectory()) return { kind: 'dir' };
    return st.isFile() ? { kind: 'file' } : { kind: 'other' };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * Resolves `parts` (path components, `.`/`..` allowed) starting at the real
 * folder `from`, following symlinks through `lookup`. Every name it looks at
 * must be inside `fence` (or one of the fence's own ancestors on the way back
 * in); otherwise LeadsOut. Names that do not exist yet resolve lexically
 * (they will be made as real folders). `followLast` false leaves a final
 * link unresolved (a name about to be replaced).
 */
export async function resolveIn(from: string, parts: readonly string[], fence: string, lookup: Lookup, followLast = true): Promise<string> {
  let cur = from;
  const todo = [...parts].reverse();
  let links = 0;
  while (todo.length > 0) {
    const c = todo.pop()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      cur = dirname(cur);
      continue;
    }
    const next = join(cur, c);
    if (isAncestor(next, fence)) {
      cur = next;
      continue;
    }
    if (!isInside(next, fence)) throw new LeadsOut(`"${next}" is outside ${fence}`);
    const last = todo.length === 0;
    const node = await lookup(next);
    if (node?.kind === 'symlink' && (followLast || !last)) {
      if (++links > MAX_LINKS) throw new LeadsOut(`too many symlinks at "${next}"`);
      if (node.target.startsWith('/')) cur = '/';
      todo.push(...node.target.split('/').reverse());
      if (!isInside(cur, fence) && !isAncestor(cur, fence)) throw new LeadsOut(`"${next}" is a link to "${node.target}", outside ${fence}`);
      continue;
    }
    if (!last && node && node.kind !== 'dir' && node.kind !== 'symlink') throw new LeadsOut(`"${next}" is not a folder`);
    cur = next;
  }
  if (!isInside(cur, fence)) throw new LeadsOut(`"${cur}" is outside ${fence}`);
  return cur;
}

/** Path components of `path` below `base` (both absolute); null when `path` is not lexically below it. */
export function below(base: string, path: string): string[] | null {
  const rel = posix.relative(base, path);
  if (rel === '') return [];
  if (rel === '..' || rel.startsWith('../') || posix.isAbsolute(rel)) return null;
  return rel.split('/');
}

export class Fence {
  private constructor(
    /** the root as given (messages) */
    readonly root: string,
    /** realpath of the root: the fence itself */
    readonly real: string,
  ) {}

  /** The fence of an existing folder. */
  static async of(root: string): Promise<Fence> {
    return new Fence(root, await realpath(root));
  }

  private fail(where: string, path: string, why: string): never {
    throw new AirlockError('EPATH', `${where}: "${path}" leads out of ${this.root} (${why}); nothing written there`, { path, root: this.root });
  }

  /**
   * The real location of `path` (absolute, lexically under the root as
   * given or its realpath), links followed while they stay inside.
   */
  async resolve(path: string, where: string, followLast = true): Promise<string> {
    const parts = below(this.root, path) ?? below(this.real, path);
    if (!parts) this.fail(where, path, 'not under the root');
    try {
      return await resolveIn(this.real, parts, this.real, diskNode, followLast);
    } catch (e) {
      if (e instanceof LeadsOut) this.fail(where, path, e.message);
      throw e;
    }
  }

  /**
   * `mkdir -p` one level at a time below the root. Returns the real folder
   * and the folders it created (outermost first), for a rollback.
   */
  async mkdir(dir: string, where: string): Promise<{ real: string; created: string[] }> {
    const real = await this.resolve(dir, where);
    const created: string[] = [];
    let cur = this.real;
    for (const c of below(this.real, real)!) {
      cur = join(cur, c);
      try {
        await mkdir(cur, 0o755);
        created.push(cur);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      // resolved above, so every existing component is a real folder; anything else changed under us
      const node = await diskNode(cur);
      if (node?.kind !== 'dir') this.fail(where, dir, `"${cur}" is ${node?.kind === 'symlink' ? 'a link' : 'not a folder'}`);
    }
    return { real, created };
  }

  /** Where a file at `path` really goes: its real (created) folder + its own name, a link there not followed. */
  async place(path: string, where: string): Promise<{ real: string; created: string[] }> {
    const parent = await this.mkdir(dirname(path), where);
    const name = posix.basename(path);
    if (name === '' || name === '.' || name === '..') this.fail(where, path, 'no file name');
    return { real: join(parent.real, name), created: parent.created };
  }

  /** Fails unless what is at `path` (if anything) is of `kind` and not a link. */
  async expectKind(path: string, kind: 'file' | 'dir', where: string): Promise<void> {
    const node = await diskNode(path);
    if (node && node.kind !== kind) this.fail(where, path, `it is ${node.kind === 'symlink' ? `a link to "${node.target}"` : `not a ${kind === 'dir' ? 'folder' : 'file'}`}`);
  }
}

/** Creates a new file, never through a link and never over anything there. */
export function createNew(path: string, mode = 0o600): Promise<FileHandle> {
  return open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
}

/** Opens a file to read, refusing a link at its name (ELOOP). */
export function openNoFollow(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
}

let counter = 0;
/** A fresh temp name in `dir` (the real folder of the file it becomes). */
export const tempIn = (dir: string, name: string): string =>
  join(dir, `.${name}.airlock-tmp-${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}`);

/** Replaces the file at `path` (its folder already resolved) whole: temp beside it, fsync, rename over whatever name is there. */
export async function writeFileAt(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = tempIn(dirname(path), posix.basename(path));
  try {
    const fh = await createNew(tmp, mode);
    try {
      await fh.writeFile(data);
      await fh.chmod(mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}
