/**
 * The install journal: `STATE/journal/<release>.jsonl`, one JSON line per
 * finished step, fsynced before the next step starts. A re-run skips every
 * step whose line is there (matched by index, path and digest, so a changed
 * manifest never matches a stale line). A torn last line (crash mid-write)
 * is ignored: that step simply runs again.
 */
import { closeSync, constants, fsyncSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir, openStateFile, readStateFile } from './state.js';

export interface JournalEntry {
  step: number;
  path: string;
  kind: string;
  sha256: string;
  /** what the step did, for `status` (e.g. files written, backups made) */
  note?: string;
  at: string;
}

export function readJournal(file: string): JournalEntry[] {
  // never read or append through a link (the state dir may sit inside the install root)
  const bytes = readStateFile(file);
  if (bytes === null) return [];
  const text = bytes.toString('utf8');
  const out: JournalEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as JournalEntry;
      if (typeof e.step === 'number' && typeof e.path === 'string' && typeof e.sha256 === 'string') out.push(e);
    } catch {
      // a torn line from a crash: that step is not finished
    }
  }
  return out;
}

export const stepKey = (e: Pick<JournalEntry, 'step' | 'path' | 'sha256'>): string => `${e.step}\u0000${e.path}\u0000${e.sha256}`;

export function finishedSteps(file: string): Set<string> {
  return new Set(readJournal(file).map(stepKey));
}

export function appendJournal(file: string, entry: Omit<JournalEntry, 'at'>): void {
  const existing = readStateFile(file);
  // a line torn by a crash ends without "\n": start on a new line so this one stays whole
  const lead = existing && existing.length > 0 && existing[existing.length - 1] !== 0x0a ? '\n' : '';
  const fd = openStateFile(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT)!;
  try {
    writeSync(fd, `${lead}${JSON.stringify({ ...entry, at: new Date().toISOString() })}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  if (!existing) fsyncDir(dirname(file));
}
