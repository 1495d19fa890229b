/**
 * `airlock verify`: re-hash blobs (all of them, or those of one release),
 * move corrupt ones to quarantine/ so they are never served again, and
 * report them (expected vs found) along with the ones that are missing.
 *
 * On every core: a backend with local files (localPath: the filesystem one) has each blob
 * hashed by one of a few worker threads, one per core, that read the file
 * themselves into a 1 MiB buffer each (nothing but the path crosses threads,
 * memory stays flat); any other backend is hashed here from its read stream.
 */
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { AirlockError } from '../manifests/errors.js';
import type { BlobBackend } from './types.js';
import { mapLimit } from './status.js';
import { offThreadHash, type FileDigest } from './support/hash-off-thread.js';

export interface RehashTarget {
  sha256: string;
  /** expected size when a manifest says it, else null */
  size: number | null;
  /** artifact paths needing it (for the missing report) */
  paths: string[];
}

export interface RehashReport {
  checked: number;
  ok: number;
  corrupt: Array<{ sha256: string; expectedSize: number | null; foundSize: number; foundSha256: string; quarantinedAs: string }>;
  missing: Array<{ sha256: string; size: number; paths: string[] }>;
}

type QuarantineBackend = BlobBackend & { quarantine?: (digest: string) => Promise<string> };

/** Hashing is CPU and disk bound: a couple at a time is enough without files to hand to workers. */
const CONCURRENCY = 2;
/** hashing workers: one per core, at most this many */
const MAX_WORKERS = 8;

export async function rehashBlobs(
  backend: QuarantineBackend,
  targets: RehashTarget[],
  onProgress?: (done: number, total: number) => void,
): Promise<RehashReport> {
  const out: RehashReport = { checked: 0, ok: 0, corrupt: [], missing: [] };
  let done = 0;
  const local = backend.localPath?.bind(backend);
  const pathOf = local ? (digest: string): string => join(local(digest).root, local(digest).relative) : null;
  const lanes = pathOf ? Math.max(1, Math.min(MAX_WORKERS, availableParallelism())) : CONCURRENCY;
  // one worker per lane; each hashes one file at a time
  const idle = pathOf ? Array.from({ length: lanes }, () => offThreadHash()) : [];
  const all = [...idle];
  const hash = async (digest: string): Promise<FileDigest> => {
    if (!pathOf) return hashBlob(backend, digest);
    const w = idle.pop()!;
    try {
      return await w.hashFile(pathOf(digest));
    } catch (e) {
      throw new AirlockError('EINTERNAL', `blob sha256:${digest} cannot be read: ${(e as Error).message}`, { sha256: digest }, { cause: e });
    } finally {
      idle.push(w);
    }
  };
  try {
    await lanesOver(targets, lanes, hash, out, backend, onProgress, () => ++done);
  } finally {
    await Promise.all(all.map((w) => w.close()));
  }
  return out;
}

async function lanesOver(
  targets: RehashTarget[],
  lanes: number,
  hash: (digest: string) => Promise<FileDigest>,
  out: RehashReport,
  backend: QuarantineBackend,
  onProgress: ((done: number, total: number) => void) | undefined,
  tick: () => number,
): Promise<void> {
  await mapLimit(targets, lanes, async (t) => {
    const s = await backend.stat(t.sha256);
    if (!s) {
      out.missing.push({ sha256: t.sha256, size: t.size ?? 0, paths: t.paths });
    } else {
      const found = await hash(t.sha256);
      out.checked++;
      if (found.sha256 === t.sha256 && (t.size === null || t.size === found.size)) out.ok++;
      else {
        const quarantinedAs = backend.quarantine ? await backend.quarantine(t.sha256) : (await backend.delete(t.sha256), '(deleted)');
        out.corrupt.push({ sha256: t.sha256, expectedSize: t.size, foundSize: found.size, foundSha256: found.sha256, quarantinedAs });
      }
    }
    onProgress?.(tick(), targets.length);
  });
}

async function hashBlob(backend: BlobBackend, digest: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of await backend.read(digest)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (e) {
    throw new AirlockError('EINTERNAL', `blob sha256:${digest} cannot be read: ${(e as Error).message}`, { sha256: digest }, { cause: e });
  }
  return { sha256: hash.digest('hex'), size };
}
