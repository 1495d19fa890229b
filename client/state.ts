/**
 * The node's own state, all under `--state-dir` (docs/operations.md "The node's state dir"):
 *
 * ```
 * STATE/
 *   trust/root.json            the trust root this node accepts (copied on first use, never from the cache)
 *   accepted.json              highest accepted serial per product (written atomically)
 *   installed.json             the release this node runs (written atomically, last step of an upgrade)
 *   envelopes/<release>.json   each accepted manifest envelope, byte for byte as verified
 *   staging/                   a small local content store: partial/, blobs/ (verified), index/
 *   journal/<release>.jsonl    one line per finished install step (fsync per line)
 *   written/<sha256(target)>.json  what the last `file` install wrote under a target: path → sha256
 *   work/                      scratch files handed to installers (removed after use)
 *   lock, lock.info            one upgrade at a time (storage/lock.ts) and who runs it
 * ```
 *
 * Nothing else is written outside `--root`.
 *
 * The state dir itself may be a link (an operator's choice of disk); below
 * it nothing is followed: a folder or file there that is a link is EPATH, so
 * a link planted by a package (the state dir may live inside the install
 * root) cannot send a write anywhere else.
 */
import { syncDirSync, writeFileAtomicSync } from '../common/atomic.js';
import { createHash } from 'node:crypto';
import { closeSync, constants, lstatSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { AirlockError } from '../manifests/errors.js';
import type { AcceptedSerial } from '../manifests/types.js';
import { assertReleaseName } from '../storage/index.js';

export interface StatePaths {
  dir: string;
  trust: string;
  accepted: string;
  installed: string;
  envelopes: string;
  staging: string;
  journal: string;
  written: string;
  work: string;
  lock: string;
}

/** State dirs in use, so the helpers below, given a plain path, know where "inside the state dir" starts. */
const stateDirs = new Set<string>();

export function statePaths(dir: string): StatePaths {
  stateDirs.add(dir);
  return Object.freeze({
    dir,
    trust: join(dir, 'trust', 'root.json'),
    accepted: join(dir, 'accepted.json'),
    installed: join(dir, 'installed.json'),
    envelopes: join(dir, 'envelopes'),
    staging: join(dir, 'staging'),
    journal: join(dir, 'journal'),
    written: join(dir, 'written'),
    work: join(dir, 'work'),
    lock: join(dir, 'lock'),
  });
}

export const envelopeFile = (s: StatePaths, release: string): string => {
  assertReleaseName(release); // release names become file names here as in the cache
  return join(s.envelopes, `${release}.json`);
};

export const journalFile = (s: StatePaths, release: string): string => {
  assertReleaseName(release);
  return join(s.journal, `${release}.jsonl`);
};

export const writtenFile = (s: StatePaths, target: string): string =>
  join(s.written, `${createHash('sha256').update(target).digest('hex')}.json`);

const stateDirOf = (path: string): string | null => {
  let best: string | null = null;
  for (const d of stateDirs) {
    const rel = posix.relative(d, path);
    if (rel !== '' && !rel.startsWith('..') && !posix.isAbsolute(rel) && (!best || d.length > best.length)) best = d;
  }
  return best;
};

const linkInState = (path: string, base: string): AirlockError =>
  new AirlockError('EPATH', `state path "${path}" is a link or not what it should be; airlock-node follows no link inside its state dir ${base}`, {
    path,
    stateDir: base,
  });

/**
 * The folder `dir` inside a state dir, each level made one at a time (when
 * `create`) and refused when it is a link or not a folder. Paths outside any
 * state dir are made as asked.
 */
export function stateFolder(dir: string, create = true): string {
  const base = stateDirOf(join(dir, '.'));
  if (!base || dir === base) {
    if (create) mkdirSync(dir, { recursive: true });
    return dir;
  }
  if (create) mkdirSync(base, { recursive: true });
  let cur = base;
  for (const part of posix.relative(base, dir).split('/')) {
    cur = join(cur, part);
    if (create) {
      try {
        mkdirSync(cur);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    let st;
    try {
      st = lstatSync(cur);
    } catch (e) {
      if (!create && (e as NodeJS.ErrnoException).code === 'ENOENT') return dir;
      throw e;
    }
    if (!st.isDirectory()) throw linkInState(cur, base);
  }
  return dir;
}

/** STATE/work, a real folder. */
export const workDir = (s: StatePaths): string => stateFolder(s.work);

/** Opens a state file without following a link at its name or on the way; null when it does not exist. */
export function openStateFile(path: string, flags: number, mode = 0o644): number | null {
  stateFolder(dirname(path), (flags & constants.O_CREAT) !== 0);
  try {
    return openSync(path, flags | constants.O_NOFOLLOW, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') throw linkInState(path, stateDirOf(path) ?? dirname(path));
    throw e;
  }
}

/** A state file's bytes (null when absent), never read through a link. */
export function readStateFile(path: string): Buffer | null {
  const fd = openStateFile(path, constants.O_RDONLY);
  if (fd === null) return null;
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A state file replaced atomically (common/atomic.ts), never written through a link below the state dir. */
export function writeStateFile(path: string, data: string | Uint8Array, mode = 0o644): void {
  // the temp is created O_EXCL and the rename replaces a link at the name: only the folders need checking
  stateFolder(dirname(path));
  writeFileAtomicSync(path, data, { mode });
}

export { syncDirSync as fsyncDir };

export function readJson<T>(path: string): T | null {
  const bytes = readStateFile(path);
  if (bytes === null) return null;
  const text = bytes.toString('utf8');
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new AirlockError('EINTERNAL', `state file ${path} is not valid JSON; remove it only if you know why it broke`, { path });
  }
}

export interface InstalledRecord {
  product: string;
  release: string;
  serial: number;
  digest: string;
  installedAt: string;
}

export const readInstalled = (s: StatePaths): InstalledRecord | null => readJson<InstalledRecord>(s.installed);
export const writeInstalled = (s: StatePaths, r: InstalledRecord): void => writeStateFile(s.installed, `${JSON.stringify(r, null, 2)}\n`);

export const readAccepted = (s: StatePaths): Record<string, AcceptedSerial> => readJson<Record<string, AcceptedSerial>>(s.accepted) ?? {};

/** Persists the new accepted serial before anything of the release is used (docs/manifest.md "Order of checks"). */
export function writeAccepted(s: StatePaths, accepted: AcceptedSerial): void {
  const all = readAccepted(s);
  const prev = all[accepted.product];
  if (prev && prev.serial > accepted.serial) return; // never lower it
  all[accepted.product] = accepted;
  writeStateFile(s.accepted, `${JSON.stringify(all, null, 2)}\n`);
}
