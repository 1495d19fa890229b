/**
 * Safe extraction of a tar or tar.gz into a target folder.
 *
 * Two passes over the verified staged blob. The first plans the whole
 * archive before anything is written: it simulates the namespace the archive
 * builds on top of what is on disk (links made by earlier entries included),
 * so every entry is checked where it really lands, not where its name
 * suggests — `a -> .` then `a/var -> ../x` is `var -> ../x` and is refused.
 * It refuses (EPATH) an absolute or `..` name, an entry landing outside the
 * target, a symlink whose target leads out of it (when made, and again in the
 * archive's final namespace), a hard link to anything but a file of this
 * archive, a device/fifo, and a file/folder clash. The second pass writes
 * each entry to its planned real place through the fence (fence.ts): temp
 * file beside it, O_EXCL|O_NOFOLLOW, rename. If that pass fails anyway
 * (disk full, the blob changed, a folder swapped meanwhile), everything it
 * made is removed and everything it replaced is put back.
 *
 * A truncated or damaged archive is EINTEGRITY naming the entry it broke in.
 */
import { createHash } from 'node:crypto';
import { link, rename, rm, rmdir, symlink } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, type Header } from 'tar-stream';
import { AirlockError } from '../../manifests/errors.js';
import { below, createNew, diskNode, Fence, LeadsOut, openNoFollow, resolveIn, tempIn, type Lookup, type Node } from './fence.js';

export interface TarEntryPlan {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode: number;
  linkname?: string;
  /** sha256 of a regular file's content (or of the file a hard link shares) */
  sha256?: string;
  /** the real absolute path the entry lands at, links on the way resolved */
  dest: string;
  /** hard link: the real path of the file it links to */
  linkFrom?: string;
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

const END_OF_ARCHIVE = 1024; // two zero blocks (POSIX); without them the archive was cut

/**
 * Iterates entries with their bodies; the body must be consumed (or drained)
 * before the next. Every way the bytes can end early or break — gzip, tar
 * framing, a body cut short, a missing end-of-archive marker — is one
 * EINTEGRITY line naming the entry it happened in.
 */
async function* entries(open: OpenArchive, where: string): AsyncGenerator<{ header: Header; body: AsyncIterable<Buffer> }> {
  const stream = await openTar(open);
  const ex = tarExtract();
  let current: string | null = null;
  let cause: Error | null = null;
  let total = 0;
  let tail: Buffer = Buffer.alloc(0);
  const broken = (e: unknown): AirlockError => {
    const why = (cause ?? (e as Error)).message.split('\n')[0];
    const at = current === null ? 'before its first entry' : `in entry "${current.slice(0, 200)}"`;
    return new AirlockError('EINTEGRITY', `${where}: the archive is cut short or damaged ${at} (${why})`, { entry: current });
  };
  stream.on('data', (c: Buffer) => {
    total += c.length;
    tail = c.length >= END_OF_ARCHIVE ? c.subarray(c.length - END_OF_ARCHIVE) : Buffer.concat([tail, c]).subarray(-END_OF_ARCHIVE);
  });
  stream.on('error', (e: Error) => {
    cause ??= e;
    ex.destroy(e);
  });
  ex.on('error', (e: Error) => {
    cause ??= e;
  });
  stream.pipe(ex as unknown as NodeJS.WritableStream);
  async function* guarded(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      for await (const c of body) yield c;
    } catch (e) {
      throw broken(e);
    }
  }
  const it = ex[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Awaited<ReturnType<typeof it.next>>['value']>;
      try {
        next = await it.next();
      } catch (e) {
        throw broken(e);
      }
      if (next.done) break;
      const entry = next.value;
      current = entry.header.name;
      yield { header: entry.header, body: guarded(entry as AsyncIterable<Buffer>) };
    }
    if (total === 0) throw new AirlockError('EINTEGRITY', `${where}: the archive is empty`, {});
    if (total % 512 !== 0 || tail.length < END_OF_ARCHIVE || tail.some((b) => b !== 0)) {
      throw broken(new Error('no end-of-archive marker'));
    }
  } finally {
    stream.destroy();
    await it.return?.().catch(() => {}); // a refusal mid-archive: let go of the extractor too
  }
}

async function drain(body: AsyncIterable<Buffer>): Promise<void> {
  for await (const _ of body) void _;
}

interface Checked {
  name: string;
  type: TarEntryPlan['type'];
  mode: number;
  linkname?: string;
}

/** Checks one header on its own (name, type, link target form); null for entries that write nothing. */
function checkHeader(h: Header, where: string): Checked | null {
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
      return { name, type: 'file', mode };
    case 'symlink': {
      const target = h.linkname ?? '';
      if (name === '') fail('has no name');
      if (target === '' || target.includes('\0')) fail('is a symlink with an empty target');
      if (target.startsWith('/')) fail(`is a symlink to the absolute path "${target}"`);
      return { name, type: 'symlink', mode, linkname: target };
    }
    case 'link': {
      if (name === '') fail('has no name');
      return { name, type: 'link', mode, linkname: safeEntryName(h.linkname ?? '', where) };
    }
    default:
      return fail(`is a ${type}, which airlock never extracts`);
  }
}

/**
 * Pass 1: every entry checked against the namespace the archive builds on
 * top of the disk below `target` (a real path: resolved through the fence);
 * EPATH for the first entry that would land or point outside it. One slot
 * per archive entry, null where nothing is written.
 */
export async function planTar(open: OpenArchive, target: string, where: string): Promise<Array<TarEntryPlan | null>> {
  const plan: Array<TarEntryPlan | null> = [];
  // what the archive has made so far, over what is on disk
  const made = new Map<string, Node>();
  // real path → sha256 of the regular files this archive made (hard links may only point at these)
  const files = new Map<string, string>();
  const links: Array<{ at: string; parent: string; target: string; entry: string }> = [];
  const lookup: Lookup = async (p) => (made.has(p) ? made.get(p)! : diskNode(p));
  const resolve = async (entry: string, from: string, parts: string[], followLast = true): Promise<string> => {
    try {
      return await resolveIn(from, parts, target, lookup, followLast);
    } catch (e) {
      if (e instanceof LeadsOut) {
        throw new AirlockError('EPATH', `${where}: tar entry "${entry.slice(0, 200)}" leads out of the target (${e.message}); nothing was extracted`, {
          entry,
        });
      }
      throw e;
    }
  };
  for await (const { header, body } of entries(open, where)) {
    const c = checkHeader(header, where);
    if (!c) {
      await drain(body);
      plan.push(null);
      continue;
    }
    const fail = (why: string): never => {
      throw new AirlockError('EPATH', `${where}: tar entry "${header.name.slice(0, 200)}" ${why}; nothing was extracted`, { entry: header.name });
    };
    const parts = c.name.split('/');
    const parent = await resolve(header.name, target, parts.slice(0, -1));
    const parentNode = await lookup(parent);
    if (parentNode && parentNode.kind !== 'dir') fail(`is inside "${parent}", which is not a folder`);
    // folders the entry implies are made as real folders
    let p = target;
    for (const part of below(target, parent)!) {
      p = join(p, part);
      if (!(await lookup(p))) made.set(p, { kind: 'dir' });
    }
    const at = join(parent, parts[parts.length - 1]!);
    const there = await lookup(at);
    const entry: TarEntryPlan = { ...c, dest: at };
    if (c.type === 'directory') {
      if (there?.kind === 'symlink') {
        entry.dest = await resolve(header.name, parent, [parts[parts.length - 1]!]);
        const real = await lookup(entry.dest);
        if (real && real.kind !== 'dir') fail(`is a folder, but "${at}" is a link to something else`);
        if (!real) made.set(entry.dest, { kind: 'dir' });
      } else if (there && there.kind !== 'dir') fail(`is a folder, but "${at}" is a file (on disk or earlier in the archive)`);
      else made.set(at, { kind: 'dir' });
      await drain(body);
    } else {
      if (there?.kind === 'dir') fail(`is a ${c.type === 'link' ? 'hard link' : c.type}, but "${at}" is a folder (on disk or earlier in the archive)`);
      if (c.type === 'file') {
        const hash = createHash('sha256');
        for await (const chunk of body) hash.update(chunk);
        entry.sha256 = hash.digest('hex');
        made.set(at, { kind: 'file' });
        files.set(at, entry.sha256);
      } else if (c.type === 'symlink') {
        await drain(body);
        await resolve(header.name, parent, c.linkname!.split('/'));
        made.set(at, { kind: 'symlink', target: c.linkname! });
        files.delete(at);
        links.push({ at, parent, target: c.linkname!, entry: header.name });
      } else {
        await drain(body);
        const src = c.linkname!.split('/');
        const from = join(await resolve(header.name, target, src.slice(0, -1)), src[src.length - 1]!);
        const sha = files.get(from);
        if (sha === undefined) fail(`is a hard link to "${header.linkname}", which is not a file earlier in the archive`);
        entry.linkFrom = from;
        entry.sha256 = sha;
        made.set(at, { kind: 'file' });
        files.set(at, sha!);
      }
    }
    plan.push(entry);
  }
  // a link that was inside when made can lead out once later entries turned its folders into links
  for (const l of links) {
    const now = made.get(l.at);
    if (now?.kind === 'symlink' && now.target === l.target) await resolve(l.entry, l.parent, l.target.split('/'));
  }
  return plan;
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
  /** relative path (where the file really is, below the target) → sha256 of every regular file written */
  written: Record<string, string>;
  /** absolute paths of backups made of operator-changed files */
  backups: string[];
}

async function fileSha256(path: string): Promise<string | null> {
  try {
    const fh = await openNoFollow(path);
    try {
      if (!(await fh.stat()).isFile()) return null;
      return createHash('sha256').update(await fh.readFile()).digest('hex');
    } finally {
      await fh.close();
    }
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

/** What a failed write pass must take back, newest first. */
export class Undo {
  private readonly steps: Array<() => Promise<unknown>> = [];
  private readonly asides: string[] = [];

  /** Folders or files this run made where nothing was. */
  made(paths: readonly string[], dirs: boolean): void {
    for (const p of paths) this.steps.push(() => (dirs ? rmdir(p) : rm(p, { force: true })));
  }

  /** `dest` was moved to `to` (a backup kept on success, or an aside removed on success). */
  moved(dest: string, to: string, keep: boolean): void {
    this.steps.push(() => rename(to, dest));
    if (!keep) this.asides.push(to);
  }

  async rollback(): Promise<void> {
    for (const step of this.steps.reverse()) await step().catch(() => {}); // a folder someone else filled stays
  }

  async commit(): Promise<void> {
    for (const a of this.asides) await rm(a, { force: true });
  }
}

/**
 * Puts `tmp` (made in dest's real folder) at `dest`: a backup of an operator's
 * change, or the old entry moved aside until the whole archive is in.
 */
export async function replaceWith(tmp: string, dest: string, undo: Undo, backup: () => Promise<string | null>): Promise<string | null> {
  const there = await diskNode(dest);
  const bak = there ? await backup() : null;
  if (bak) undo.moved(dest, bak, true);
  else if (there) {
    const aside = tempIn(dirname(dest), `${posix.basename(dest)}.old`);
    await rename(dest, aside);
    undo.moved(dest, aside, false);
  }
  await rename(tmp, dest);
  undo.made([dest], false);
  return bak;
}

/** Pass 2: writes a checked plan to the real places it names, or nothing at all. */
export async function writeTar(open: OpenArchive, plan: ReadonlyArray<TarEntryPlan | null>, target: string, fence: Fence, opts: ExtractOptions): Promise<ExtractResult> {
  const result: ExtractResult = { written: {}, backups: [] };
  const undo = new Undo();
  const dirModes: Array<[string, number]> = [];
  const integrity = (why: string): AirlockError =>
    new AirlockError('EINTEGRITY', `${opts.where}: ${why} between the check and the write; nothing was extracted`, {});
  try {
    const top = await fence.mkdir(target, opts.where);
    undo.made(top.created, true);
    const inTarget = await Fence.of(target);
    let i = 0;
    for await (const { body } of entries(open, opts.where)) {
      if (i >= plan.length) throw integrity('the archive changed');
      const entry = plan[i++];
      if (!entry) {
        await drain(body);
        continue;
      }
      if (entry.type === 'directory') {
        await drain(body);
        const d = await inTarget.mkdir(entry.dest, opts.where);
        undo.made(d.created, true);
        dirModes.push([d.real, entry.mode]);
        continue;
      }
      const { real: dest, created } = await inTarget.place(entry.dest, opts.where);
      undo.made(created, true);
      const key = below(target, dest)!.join('/');
      const tmp = tempIn(dirname(dest), posix.basename(dest));
      try {
        if (entry.type === 'file') {
          const fh = await createNew(tmp);
          const hash = createHash('sha256');
          try {
            for await (const c of body) {
              hash.update(c);
              await fh.write(c);
            }
            await fh.chmod(entry.mode);
            await fh.sync();
          } finally {
            await fh.close();
          }
          if (hash.digest('hex') !== entry.sha256) throw integrity(`"${entry.name}" changed`);
          result.written[key] = entry.sha256!;
        } else {
          await drain(body);
          if (entry.type === 'symlink') await symlink(entry.linkname!, tmp);
          else {
            await link(entry.linkFrom!, tmp);
            result.written[key] = entry.sha256!;
          }
        }
        if ((await diskNode(dest))?.kind === 'dir') {
          throw new AirlockError('EPATH', `${opts.where}: "${dest}" is a folder on disk but a ${entry.type} in the archive; nothing was extracted`, { dest });
        }
        const bak = await replaceWith(tmp, dest, undo, () =>
          entry.type === 'symlink' ? Promise.resolve(null) : backupIfChanged(dest, opts.previous[key], entry.sha256!, opts.backupSuffix),
        );
        if (bak) result.backups.push(bak);
      } finally {
        await rm(tmp, { force: true });
      }
    }
    if (i !== plan.length) throw integrity('the archive changed');
  } catch (e) {
    await undo.rollback();
    throw e;
  }
  await undo.commit();
  // folder modes last, so a read-only folder does not stop its own entries
  for (const [dir, mode] of dirModes.reverse()) {
    const fh = await openNoFollow(dir).catch(() => null);
    if (fh) await fh.chmod(mode | 0o700).finally(() => fh.close());
  }
  return result;
}

/** Both passes: refuse first, write after. */
export async function extractTar(open: OpenArchive, opts: ExtractOptions): Promise<ExtractResult> {
  const fence = await Fence.of(opts.fence);
  const target = await fence.resolve(opts.target, opts.where);
  const plan = await planTar(open, target, opts.where);
  return writeTar(open, plan, target, fence, opts);
}
