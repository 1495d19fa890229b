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

/**
 * Readiness from a stream of artifacts (releases/outline.ts scanOutline):
 * the store is listed once and each artifact checked as it comes, keeping
 * only the digests seen and what is missing; no list of every artifact or
 * blob is built. Same answer as releaseStatus.
 */
export class StreamedStatus {
  /** what the store holds: digest → already counted in `bytes` (one map, no second set of digests seen) */
  private readonly held: Map<string, boolean>;
  private readonly missingBy = new Map<string, ReleaseStatus['missing'][number]>();
  private readonly missing: ReleaseStatus['missing'] = [];
  private readonly files = { total: 0, present: 0, missing: 0 };
  private readonly bytes = { total: 0, present: 0, missing: 0 };

  constructor(held: Iterable<string>) {
    this.held = new Map();
    for (const d of held) this.held.set(d, false);
  }

  /** `path` is asked for only when the artifact misses something */
  add(a: { sha256: string; size: number; blobs?: readonly { sha256: string; size: number }[] }, path: () => string): void {
    let whole = this.one(a, path);
    if (a.blobs) for (const b of a.blobs) whole = this.one(b, path) && whole;
    this.files.total++;
    if (whole) this.files.present++;
    else this.files.missing++;
  }

  /** counts `ref` once; true when the store holds it */
  private one(ref: { sha256: string; size: number }, pathOf: () => string): boolean {
    const counted = this.held.get(ref.sha256);
    if (counted !== undefined) {
      if (!counted) {
        this.held.set(ref.sha256, true);
        this.bytes.total += ref.size;
        this.bytes.present += ref.size;
      }
      return true;
    }
    const m = this.missingBy.get(ref.sha256);
    const path = pathOf();
    if (m) {
      if (!m.paths.includes(path)) m.paths.push(path);
    } else {
      this.bytes.total += ref.size;
      this.bytes.missing += ref.size;
      const entry = { sha256: ref.sha256, size: ref.size, paths: [path] };
      this.missingBy.set(ref.sha256, entry);
      this.missing.push(entry);
    }
    return false;
  }

  result(head: { product: string; release: string; serial: number }): ReleaseStatus {
    return { ...head, ready: this.missing.length === 0, files: this.files, bytes: this.bytes, missing: this.missing };
  }
}

/** Every digest the backend holds (one listing). */
export async function heldSet(backend: BlobBackend): Promise<Iterable<string>> {
  const listAll = (backend as { listAll?: () => Promise<string[]> }).listAll;
  if (listAll) return listAll.call(backend);
  const held: string[] = [];
  for await (const d of backend.list()) held.push(d);
  return held;
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
