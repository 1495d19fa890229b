/** `airlock-node status`: the installed release, what is staged, and the journal. Reads only. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeEnvelope } from '../manifests/index.js';
import type { ReleaseManifest } from '../manifests/types.js';
import { openStore } from '../storage/index.js';
import { humanBytes } from '../common/output.js';
import { readJournal, type JournalEntry } from './journal.js';
import { neededBlobs } from './plan.js';
import { readAccepted, readInstalled, statePaths, type InstalledRecord } from './state.js';
import { readFileSync } from 'node:fs';

export interface NodeStatus {
  stateDir: string;
  installed: InstalledRecord | null;
  accepted: Record<string, { serial: number; digest: string }>;
  releases: Array<{ release: string; staged: { blobs: number; present: number; bytes: number; presentBytes: number }; journal: JournalEntry[] }>;
}

export async function nodeStatus(stateDir: string): Promise<{ data: NodeStatus; text: string }> {
  const state = statePaths(stateDir);
  const installed = readInstalled(state);
  const releases: NodeStatus['releases'] = [];
  const names = existsSync(state.envelopes) ? readdirSync(state.envelopes).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)) : [];
  const store = existsSync(state.staging) ? await openStore({ cacheDir: state.staging }) : null;
  try {
    for (const release of names.sort()) {
      // already verified when it was written here; decoded only for display
      const manifest = JSON.parse(decodeEnvelope(readFileSync(join(state.envelopes, `${release}.json`))).payload.toString('utf8')) as ReleaseManifest;
      const blobs = neededBlobs(manifest.artifacts);
      let present = 0;
      let presentBytes = 0;
      for (const b of blobs) {
        if (store && (await store.stat(b.sha256))) {
          present++;
          presentBytes += b.size;
        }
      }
      const bytes = blobs.reduce((n, b) => n + b.size, 0);
      releases.push({ release, staged: { blobs: blobs.length, present, bytes, presentBytes }, journal: readJournal(join(state.journal, `${release}.jsonl`)) });
    }
  } finally {
    await store?.close();
  }
  const lines = [
    `state dir: ${stateDir}`,
    installed ? `installed: ${installed.release} (serial ${installed.serial}, ${installed.installedAt})` : 'installed: nothing yet',
  ];
  for (const r of releases) {
    lines.push(
      `release ${r.release}: staged ${r.staged.present}/${r.staged.blobs} blob(s), ${humanBytes(r.staged.presentBytes)} of ${humanBytes(r.staged.bytes)}; journal ${r.journal.length} step(s) done`,
    );
    for (const j of r.journal) lines.push(`  ${j.at} step ${j.step + 1} ${j.kind} ${j.path}${j.note ? `: ${j.note}` : ''}`);
  }
  return { data: { stateDir, installed, accepted: readAccepted(state), releases }, text: lines.join('\n') };
}
