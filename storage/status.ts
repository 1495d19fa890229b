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
  private readonly seen = new Set<string>();
  private readonly missingBy = new Map<string, ReleaseStatus['missing'][number]>();
  private readonly missing: ReleaseStatus['missing'] = [];
  private readonly files = { total: 0, present: 0, missing: 0 };
  private readonly bytes = { total: 0, present: 0, missing: 0 };

  constructor(private readonly held: ReadonlySet<string>) {}

  add(a: ArtifactOutline): void {
    const refs = a.blobs ? [a, ...a.blobs] : [a];
    let whole = true;
    for (const ref of refs) {
      const present = this.held.has(ref.sha256);
      if (!present) whole = false;
      if (!this.seen.has(ref.sha256)) {
        this.seen.add(ref.sha256);
        this.bytes.total += ref.size;
        if (present) this.bytes.present += ref.size;
        else {
          this.bytes.missing += ref.size;
          const m = { sha256: ref.sha256, size: ref.size, paths: [a.path] };
          this.missingBy.set(ref.sha256, m);
          this.missing.push(m);
        }
      } else {
        const m = this.missingBy.get(ref.sha256);
        if (m && !m.paths.includes(a.path)) m.paths.push(a.path);
      }
    }
    this.files.total++;
    if (whole) this.files.present++;
    else this.files.missing++;
  }

  result(head: { product: string; release: string; serial: number }): ReleaseStatus {
    return { ...head, ready: this.missing.length === 0, files: this.files, bytes: this.bytes, missing: this.missing };
  }
}

/** Every digest the backend holds (one listing). */
export async function heldSet(backend: BlobBackend): Promise<Set<string>> {
  const held = new Set<string>();
  const listAll = (backend as { listAll?: () => Promise<string[]> }).listAll;
  if (listAll) for (const d of await listAll.call(backend)) held.add(d);
  else for await (const d of backend.list()) held.add(d);
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
