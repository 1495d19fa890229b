/**
 * Safe extraction of a tar or tar.gz into a target folder.
 *
 * Two passes over the verified staged blob: the first reads every entry and
 * refuses the whole archive (EPATH, nothing written) on an absolute path, a
 * `..` segment, a link pointing out of the target, a hard link to something
 * not in the archive, or a device/fifo. The second writes each entry to a
 * temp name beside its destination and renames it into place, after checking
 * that the real (symlink-resolved) folder it lands in is still inside the
 * target: a symlink already on disk cannot redirect a write outside either.
 */
import { createHash } from 'node:crypto';
import { chmod, link, lstat, mkdir, open as open_, readFile, realpath, rename, rm, symlink } from 'node:fs/promises';
import { dirname, join, posix, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, type Header } from 'tar-stream';
import { AirlockError } from '../../manifests/errors.js';

export interface TarEntryPlan {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode: number;
  linkname?: string;
  /** sha256 of a regular file's content */
  sha256?: string;
}

/** Opens the archive's bytes from the start; called once per pass. */
export type OpenArchive = () => Promise<Readable>;

async function openTar(open: OpenArchive): Promise<Readable> {
  const probe = await open();
  let head: Buffer = Buffer.alloc(0);
  for await (const chunk of probe) {
    head = Buffer.concat([head, chunk as Buffer]);
    if (head.length >= 2) break;
  }
  probe.destroy();
  const raw = await open();
  if (head[0] === 0x1f && head[1] === 0x8b) return raw.pipe(createGunzip());
  return raw;
}

/** Normalizes an entry name (strips `./`), EPATH if unsafe. */
export function safeEntryName(name: string, where: string): string {
  const fail = (why: string): never => {
    throw new AirlockError('EPATH', `${where}: tar entry "${name.slice(0, 200)}" ${why}; nothing was extracted`, { entry: name });
  };
  if (name.includes('\0')) fail('contains NUL');
  if (name.startsWith('/')) fail('is an absolute path');
  if (name.includes('\\')) fail('contains a backslash');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) fail('climbs out of the target with ".."');
  return parts.join('/');
}

/** Iterates entries with their bodies; the body must be consumed (or drained) before the next. */
async function* entries(open: OpenArchive, where: string): AsyncGenerator<{ header: Header; body: AsyncIterable<Buffer> }> {
  const stream = await openTar(open);
  const ex = tarExtract();
  let streamError: Error | null = null;
  stream.on('error', (e: Error) => {
    streamError = e;
    ex.destroy(e);
  });
  stream.pipe(ex as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of ex) yield { header: entry.header, body: entry as AsyncIterable<Buffer> };
  } catch (e) {
    if (e instanceof AirlockError) throw e;
    const why = (streamError ?? (e as Error)).message;
    throw new AirlockError('EINTEGRITY', `${where}: not a readable tar archive: ${why}`);
  } finally {
    stream.destroy();
  }
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of body) void _;
}

/** Pass 1: every entry, checked; EPATH for the first unsafe one. */
export async function planTar(open: OpenArchive, where: string): Promise<TarEntryPlan[]> {
  const plan: TarEntryPlan[] = [];
  const files = new Set<string>();
  for await (const { header, body } of entries(open, where)) {
    const entry = checkEntry(header, where, files);
    if (entry?.type === 'file') {
      const hash = createHash('sha256');
      for await (const c of body) hash.update(c);
      entry.sha256 = hash.digest('hex');
    } else await drain(body);
    if (entry) plan.push(entry);
  }
  return plan;
}

function checkEntry(h: Header, where: string, files: Set<string>): TarEntryPlan | null {
  const name = safeEntryName(h.name, where);
  const mode = (h.mode ?? 0o644) & 0o777;
  const type: string = h.type ?? 'file';
  const fail = (why: string): never => {
    throw new AirlockError('EPATH', `${where}: tar entry "${h.name.slice(0, 200)}" ${why}; nothing was extracted`, { entry: h.name });
  };
  switch (type) {
    case 'pax-global-header':
      return null;
    case 'directory':
      return name === '' ? null : { name, type: 'directory', mode };
    case 'file':
    case 'contiguous-file':
      if (name === '') fail('has no name');
      files.add(name);
      return { name, type: 'file', mode };
    case 'symlink': {
      const target = h.linkname ?? '';
      if (target === '' || target.includes('\0')) fail('is a symlink with an empty target');
      if (target.startsWith('/')) fail(`is a symlink to the absolute path "${target}"`);
      const resolved = posix.normalize(posix.join(posix.dirname(name), target));
      if (resolved === '..' || resolved.startsWith('../')) fail(`is a symlink pointing out of the target ("${target}")`);
      return { name, type: 'symlink', mode, linkname: target };
    }
    case 'link': {
      const target = safeEntryName(h.linkname ?? '', where);
      if (!files.has(target)) fail(`is a hard link to "${h.linkname}", which is not a file earlier in the archive`);
      files.add(name);
      return { name, type: 'link', mode, linkname: target };
    }
    default:
      return fail(`is a ${type}, which airlock never extracts`);
  }
}

export interface ExtractOptions {
  /** absolute target folder (already inside the install root) */
  target: string;
  /** the folder nothing may be written outside of (the install root) */
  fence: string;
  where: string;
  /** what the previous install wrote here: relative path → sha256 */
  previous: Readonly<Record<string, string>>;
  /** suffix for backups of files an operator changed, e.g. `.airlock-bak-20261120T101500Z` */
  backupSuffix: string;
}

export interface ExtractResult {
  /** relative path → sha256 of every regular file written */
  written: Record<string, string>;
  /** absolute paths of backups made of operator-changed files */
  backups: string[];
}

const inside = (child: string, parent: string): boolean => child === parent || child.startsWith(parent.endsWith(sep) ? parent : parent + sep);

/** Creates `dir` (and parents) and checks that where it really is stays inside `fence`. */
export async function ensureDirInside(dir: string, fence: string, where: string): Promise<void> {
  const realFence = await realpath(fence);
  const check = async (path: string): Promise<void> => {
    const real = await realpath(path);
    if (!inside(real, realFence)) {
      throw new AirlockError('EPATH', `${where}: "${dir}" resolves to "${real}", outside ${fence}; nothing written there`, { dir, real });
    }
  };
  // check the deepest folder that exists BEFORE creating anything below it:
  // mkdir through a symlink that points out would already write outside
  let probe = dir;
  while (!(await lstat(probe).then(() => true, () => false))) probe = dirname(probe);
  await check(probe);
  await mkdir(dir, { recursive: true });
  await check(dir);
}

async function fileSha256(path: string): Promise<string | null> {
  try {
    const st = await lstat(path);
    if (!st.isFile()) return null;
    return createHash('sha256').update(await readFile(path)).digest('hex');
  } catch {
    return null;
  }
}

/**
 * Backs up `dest` when an operator changed it since the last install:
 * the last install wrote it with `before`, it now differs, and it is not
 * already the content we are about to write (a re-run after a crash).
 */
export async function backupIfChanged(dest: string, before: string | undefined, next: string, suffix: string): Promise<string | null> {
  if (!before) return null;
  const now = await fileSha256(dest);
  if (now === null || now === before || now === next) return null;
  const bak = `${dest}${suffix}`;
  await rename(dest, bak);
  return bak;
}

let tmpCounter = 0;
const tmpBeside = (dest: string): string => join(dirname(dest), `.${posix.basename(dest)}.airlock-tmp-${process.pid}-${tmpCounter++}`);

/** Pass 2: writes a checked plan. */
export async function writeTar(open: OpenArchive, plan: TarEntryPlan[], opts: ExtractOptions): Promise<ExtractResult> {
  const byName = new Map<string, TarEntryPlan>();
  plan.forEach((p) => byName.set(p.name, p));
  const result: ExtractResult = { written: {}, backups: [] };
  await ensureDirInside(opts.target, opts.fence, opts.where);
  const fenceTarget = opts.target;
  const dirModes: Array<[string, number]> = [];
  for await (const { header, body } of entries(open, opts.where)) {
    const name = safeEntryName(header.name, opts.where);
    const entry = byName.get(name);
    if (!entry || name === '') {
      await drain(body);
      continue;
    }
    const dest = join(opts.target, ...name.split('/'));
    if (entry.type === 'directory') {
      await drain(body);
      await ensureDirInside(dest, fenceTarget, opts.where);
      dirModes.push([dest, entry.mode]);
      continue;
    }
    await ensureDirInside(dirname(dest), fenceTarget, opts.where);
    const existing = await lstat(dest).catch(() => null);
    if (existing?.isDirectory()) {
      throw new AirlockError('EPATH', `${opts.where}: "${dest}" is a folder on disk but a ${entry.type} in the archive`, { dest });
    }
    const tmp = tmpBeside(dest);
    try {
      if (entry.type === 'file') {
        const fh = await open_(tmp, 'wx', 0o600);
        try {
          for await (const c of body) await fh.write(c);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await chmod(tmp, entry.mode);
        const bak = await backupIfChanged(dest, opts.previous[name], entry.sha256!, opts.backupSuffix);
        if (bak) result.backups.push(bak);
        result.written[name] = entry.sha256!;
      } else {
        await drain(body);
        if (entry.type === 'symlink') await symlink(entry.linkname!, tmp);
        else {
          await link(join(opts.target, ...entry.linkname!.split('/')), tmp);
          const sha = byName.get(entry.linkname!)?.sha256;
          if (sha) result.written[name] = sha;
        }
      }
      await rename(tmp, dest);
    } finally {
      await rm(tmp, { force: true });
    }
  }
  // folder modes last, so a read-only folder does not stop its own entries
  for (const [dir, mode] of dirModes.reverse()) await chmod(dir, mode | 0o700);
  return result;
}

/** Both passes: refuse first, write after. */
export async function extractTar(open: OpenArchive, opts: ExtractOptions): Promise<ExtractResult> {
  const plan = await planTar(open, opts.where);
  return writeTar(open, plan, opts);
}
