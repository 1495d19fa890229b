/**
 * `airlock verify`: re-hash blobs (all of them, or those of one release),
 * move corrupt ones to quarantine/ so they are never served again, and
 * report them (expected vs found) along with the ones that are missing.
 */
import { createHash } from 'node:crypto';
import { AirlockError } from '../manifests/errors.js';
import type { BlobBackend } from './types.js';
import { mapLimit } from './status.js';

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

/** Hashing is CPU and disk bound: a couple at a time is enough. */
const CONCURRENCY = 2;

export async function rehashBlobs(
  backend: QuarantineBackend,
  targets: RehashTarget[],
  onProgress?: (done: number, total: number) => void,
): Promise<RehashReport> {
  const out: RehashReport = { checked: 0, ok: 0, corrupt: [], missing: [] };
  let done = 0;
  await mapLimit(targets, CONCURRENCY, async (t) => {
    const s = await backend.stat(t.sha256);
    if (!s) {
      out.missing.push({ sha256: t.sha256, size: t.size ?? 0, paths: t.paths });
    } else {
      const found = await hashBlob(backend, t.sha256);
      out.checked++;
      if (found.sha256 === t.sha256 && (t.size === null || t.size === found.size)) out.ok++;
      else {
        const quarantinedAs = backend.quarantine ? await backend.quarantine(t.sha256) : (await backend.delete(t.sha256), '(deleted)');
        out.corrupt.push({ sha256: t.sha256, expectedSize: t.size, foundSize: found.size, foundSha256: found.sha256, quarantinedAs });
      }
    }
    onProgress?.(++done, targets.length);
  });
  return out;
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
