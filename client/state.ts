/**
 * The node's own state, all under `--state-dir` (DESIGN.md "Node client"):
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
 *   lock                       one upgrade at a time
 * ```
 *
 * Nothing else is written outside `--root`.
 */
import { syncDirSync, writeFileAtomicSync } from '../storage/support/atomic.js';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AirlockError } from '../manifests/errors.js';
import type { AcceptedSerial } from '../manifests/types.js';

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

export function statePaths(dir: string): StatePaths {
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

/** Release names become file names: same rule as the cache's store. */
const RELEASE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/;

export function assertReleaseFileName(release: string): void {
  if (!RELEASE_NAME.test(release) || release.includes('..')) {
    throw new AirlockError('EPATH', `release name "${release.slice(0, 80)}" cannot be used as a file name`, { release });
  }
}

export const envelopeFile = (s: StatePaths, release: string): string => {
  assertReleaseFileName(release);
  return join(s.envelopes, `${release}.json`);
};

export const journalFile = (s: StatePaths, release: string): string => {
  assertReleaseFileName(release);
  return join(s.journal, `${release}.jsonl`);
};

export const writtenFile = (s: StatePaths, target: string): string =>
  join(s.written, `${createHash('sha256').update(target).digest('hex')}.json`);

/** Temp + fsync + rename + fsync(dir): after a crash the file is either the old or the new one, whole. */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  writeFileAtomicSync(path, data, { mode });
}

export { syncDirSync as fsyncDir };

export function readJson<T>(path: string): T | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
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
export const writeInstalled = (s: StatePaths, r: InstalledRecord): void => writeFileAtomic(s.installed, `${JSON.stringify(r, null, 2)}\n`);

export const readAccepted = (s: StatePaths): Record<string, AcceptedSerial> => readJson<Record<string, AcceptedSerial>>(s.accepted) ?? {};

/** Persists the new accepted serial before anything of the release is used (DESIGN.md order of checks). */
export function writeAccepted(s: StatePaths, accepted: AcceptedSerial): void {
  const all = readAccepted(s);
  const prev = all[accepted.product];
  if (prev && prev.serial > accepted.serial) return; // never lower it
  all[accepted.product] = accepted;
  writeFileAtomic(s.accepted, `${JSON.stringify(all, null, 2)}\n`);
}
