/**
 * A RecordShelf in memory: unit tests of the sync, and a stand-in wherever
 * records need no bucket. Etags are the bytes' MD5, as a single S3 PUT's.
 */
import { createHash } from 'node:crypto';
import type { RecordShelf, ShelfEntry } from '../types.js';

/** A shelf in memory (unit tests, and a stand-in wherever a bucket is not needed); etags are the bytes' MD5 as S3's. */
export function memoryShelf(where = 'memory://'): RecordShelf & { readonly records: Map<string, { bytes: Buffer; etag: string; mtimeMs: number }> } {
  const records = new Map<string, { bytes: Buffer; etag: string; mtimeMs: number }>();
  return {
    where,
    records,
    async get(key) {
      const r = records.get(key);
      return r ? { bytes: Buffer.from(r.bytes), etag: r.etag } : null;
    },
    async put(key, bytes) {
      const etag = createHash('md5').update(bytes).digest('hex');
      records.set(key, { bytes: Buffer.from(bytes), etag, mtimeMs: Date.now() });
      return etag;
    },
    async delete(key) {
      records.delete(key);
    },
    async list(folder) {
      const base = `${folder.replace(/\/+$/, '')}/`;
      const out: ShelfEntry[] = [];
      for (const [key, r] of records) {
        const name = key.slice(base.length);
        if (key.startsWith(base) && name && !name.includes('/')) out.push({ name, etag: r.etag, size: r.bytes.length, mtimeMs: r.mtimeMs });
      }
      return out.sort((a, b) => (a.name < b.name ? -1 : 1));
    },
  };
}
