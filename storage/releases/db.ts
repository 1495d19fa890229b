/**
 * The level database (`index/level/`): releases, artifact → blob, blob
 * metadata, and the accepted serial per product. Only the writer process
 * opens it (LevelDB takes an exclusive lock); everything in it can be
 * rebuilt from blobs/ and the envelope files (rebuild.ts).
 *
 * Keys (NUL cannot occur in a safe path or a release name):
 *   r\0<release>            → { release, product, serial, digest }
 *   a\0<release>\0<path>    → { sha256, size, kind }
 *   b\0<sha256>             → { size, addedAt }
 *   s\0<product>            → AcceptedSerial
 */
import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import { AirlockError } from '../../manifests/errors.js';
import type { AcceptedSerial, ArtifactKind } from '../../manifests/types.js';
import { levelDir } from '../paths.js';
import type { StoredRelease } from '../types.js';

export interface ReleaseRecord {
  release: string;
  product: string;
  serial: number;
  digest: string;
}
export interface ArtifactRecord {
  sha256: string;
  size: number;
  kind: ArtifactKind;
}
export interface BlobRecord {
  size: number;
  addedAt: string;
}

type Value = ReleaseRecord | ArtifactRecord | BlobRecord | AcceptedSerial;
type Op = { type: 'put'; key: string; value: Value } | { type: 'del'; key: string };

const K = {
  release: (r: string) => `r\0${r}`,
  artifact: (r: string, p: string) => `a\0${r}\0${p}`,
  artifactsOf: (r: string) => ({ gt: `a\0${r}\0`, lt: `a\0${r}\u0001` }),
  blob: (d: string) => `b\0${d}`,
  accepted: (p: string) => `s\0${p}`,
  prefix: (c: string) => ({ gt: `${c}\0`, lt: `${c}\u0001` }),
};

export class LevelIndex {
  private constructor(private readonly db: Level<string, Value>) {}

  static async open(root: string): Promise<LevelIndex> {
    await mkdir(levelDir(root), { recursive: true });
    const db = new Level<string, Value>(levelDir(root), { valueEncoding: 'json' });
    try {
      await db.open();
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      if ((e as { code?: string }).code === 'LEVEL_LOCKED' || cause?.code === 'LEVEL_LOCKED') {
        throw new AirlockError('ELOCKED', `index ${levelDir(root)} is open in another process`, { path: levelDir(root) });
      }
      throw new AirlockError('EINTERNAL', `index ${levelDir(root)} cannot be opened: ${(e as Error).message}`, {}, { cause: e });
    }
    return new LevelIndex(db);
  }

  /** One atomic batch: the release, its artifacts (replacing older ones), and the accepted serial. */
  async putRelease(stored: StoredRelease, accepted: AcceptedSerial | null): Promise<void> {
    const ops: Op[] = [];
    for await (const key of this.db.keys(K.artifactsOf(stored.release))) ops.push({ type: 'del', key });
    const { release, product, serial, digest } = stored;
    ops.push({ type: 'put', key: K.release(release), value: { release, product, serial, digest } });
    for (const a of stored.manifest.artifacts) {
      ops.push({ type: 'put', key: K.artifact(release, a.path), value: { sha256: a.sha256, size: a.size, kind: a.kind } });
    }
    if (accepted) ops.push({ type: 'put', key: K.accepted(accepted.product), value: accepted });
    await this.db.batch(ops);
  }

  async getRelease(release: string): Promise<ReleaseRecord | undefined> {
    return (await this.db.get(K.release(release))) as ReleaseRecord | undefined;
  }

  async releases(): Promise<ReleaseRecord[]> {
    return (await this.db.values(K.prefix('r')).all()) as ReleaseRecord[];
  }

  async artifact(release: string, path: string): Promise<ArtifactRecord | undefined> {
    return (await this.db.get(K.artifact(release, path))) as ArtifactRecord | undefined;
  }

  async putBlob(digest: string, record: BlobRecord): Promise<void> {
    await this.db.put(K.blob(digest), record);
  }

  async putBlobs(entries: Array<[string, BlobRecord]>): Promise<void> {
    await this.db.batch(entries.map(([d, value]) => ({ type: 'put' as const, key: K.blob(d), value })));
  }

  async deleteBlob(digest: string): Promise<void> {
    await this.db.del(K.blob(digest));
  }

  async blob(digest: string): Promise<BlobRecord | undefined> {
    return (await this.db.get(K.blob(digest))) as BlobRecord | undefined;
  }

  async accepted(): Promise<Record<string, AcceptedSerial>> {
    const out: Record<string, AcceptedSerial> = {};
    for (const a of (await this.db.values(K.prefix('s')).all()) as AcceptedSerial[]) out[a.product] = a;
    return out;
  }

  async putAccepted(a: AcceptedSerial): Promise<void> {
    await this.db.put(K.accepted(a.product), a);
  }

  /** Every release and artifact key, in one batch (the blob records stay). */
  async clearReleases(): Promise<void> {
    const ops: Op[] = [];
    for await (const key of this.db.keys(K.prefix('r'))) ops.push({ type: 'del', key });
    for await (const key of this.db.keys(K.prefix('a'))) ops.push({ type: 'del', key });
    await this.db.batch(ops);
  }

  async clear(): Promise<void> {
    await this.db.clear();
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
