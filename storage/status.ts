/**
 * Readiness of a release: which blobs are in the store, which are missing
 * (with the artifact paths needing them), and the bytes still to fetch.
 * Fast at scale: a big release is checked against one listing of the store
 * (a Set), a small one by bounded parallel stats.
 */
import { releaseBlobs, type ArtifactOutline } from '../manifests/blobs.js';
import type { BlobBackend, ReleaseStatus } from './types.js';

/** What readiness needs of a release: a stored manifest or its outline (releases/outline.ts). */
export interface ReleaseOutline {
  product: string;
  release: string;
  serial: number;
  artifacts: readonly ArtifactOutline[];
}

/** above this many blobs, one listing of the store beats a stat per blob */
const LIST_THRESHOLD = 2000;
const STAT_CONCURRENCY = 64;

/** Runs `fn` over `items` with at most `limit` in flight, results in order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Which of `digests` the backend holds. */
export async function presentSet(backend: BlobBackend, digests: readonly string[]): Promise<Set<string>> {
  const present = new Set<string>();
  if (digests.length > LIST_THRESHOLD) {
    const listAll = (backend as { listAll?: () => Promise<string[]> }).listAll;
    const held = new Set<string>();
    if (listAll) for (const d of await listAll.call(backend)) held.add(d);
    else for await (const d of backend.list()) held.add(d);
    for (const d of digests) if (held.has(d)) present.add(d);
    return present;
  }
  const found = await mapLimit(digests, STAT_CONCURRENCY, (d) => backend.stat(d));
  digests.forEach((d, i) => {
    if (found[i]) present.add(d);
  });
  return present;
}

export async function releaseStatus(stored: ReleaseOutline, backend: BlobBackend): Promise<ReleaseStatus> {
  const blobs = releaseBlobs(stored);
  const present = await presentSet(
    backend,
    blobs.map((b) => b.sha256),
  );
  const bytes = { total: 0, present: 0, missing: 0 };
  const missing: ReleaseStatus['missing'] = [];
  for (const b of blobs) {
    bytes.total += b.size;
    if (present.has(b.sha256)) bytes.present += b.size;
    else {
      bytes.missing += b.size;
      missing.push({ sha256: b.sha256, size: b.size, paths: b.paths });
    }
  }
  const files = { total: stored.artifacts.length, present: 0, missing: 0 };
  for (const a of stored.artifacts) {
    const whole = present.has(a.sha256) && (!a.blobs || a.blobs.every((b) => present.has(b.sha256)));
    if (whole) files.present++;
    else files.missing++;
  }
  return {
    release: stored.release,
    product: stored.product,
    serial: stored.serial,
    ready: missing.length === 0,
    files,
    bytes,
    missing,
  };
}
