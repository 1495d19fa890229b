/** Shared pieces of the install-step tests: real tar archives, a sandbox with a sentinel outside the root, a context. */
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import type { InstallContext } from '../../../client/install/context.js';
import { statePaths } from '../../../client/state.js';
import type { Output } from '../../../common/output.js';
import { sha256 } from '../../support/release.js';

export type TarItem = { name: string; type?: 'file' | 'symlink' | 'link' | 'directory' | 'character-device'; body?: string | Buffer; linkname?: string; mode?: number };

export async function makeTar(entries: TarItem[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.type === 'file' || e.type === undefined) p.entry({ name: e.name, mode: e.mode ?? 0o644 }, e.body ?? '');
    else p.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: e.mode ?? 0o755 });
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as unknown as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

export { sha256 };

/**
 * DIR/root is the install root, DIR/escaped a sentinel folder beside it
 * (where `ROOT/x -> ../escaped` leads), DIR/state the state dir.
 */
export function sandbox(label = 'fence') {
  const dir = mkdtempSync(join(tmpdir(), `airlock-${label}-`));
  const root = join(dir, 'root');
  const escaped = join(dir, 'escaped');
  mkdirSync(root);
  mkdirSync(escaped);
  return { dir, root, escaped, state: join(dir, 'state'), outside: () => readdirSync(escaped) };
}

export const quiet: Output = {
  json: false,
  note: () => {},
  warn: () => {},
  event: () => {},
  result: () => {},
  failure: () => {},
  progress: () => ({ update: () => {}, increment: () => {}, stop: () => {} }),
};

/** An install context reading blobs from memory (by digest, as the staging store does). */
export function context(root: string, stateDir: string, blobs: Buffer[] = []): InstallContext & { add(b: Buffer): string } {
  const byDigest = new Map<string, Buffer>();
  const add = (b: Buffer): string => {
    const d = sha256(b);
    byDigest.set(d, b);
    return d;
  };
  blobs.forEach(add);
  return {
    root,
    release: '1.0.0',
    state: statePaths(stateDir),
    source: {
      read: async (digest) => {
        const b = byDigest.get(digest);
        if (!b) throw new Error(`no blob ${digest}`);
        return Readable.from([b]);
      },
    },
    commands: { file: null, deb: null, gem: null, 'oci-image': null },
    out: quiet,
    now: new Date('2026-01-01T00:00:00Z'),
    add,
  };
}

/** The error a promise rejects with (or a marker when it resolves). */
export const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => new Error('resolved, expected a refusal'), (e: unknown) => e);
