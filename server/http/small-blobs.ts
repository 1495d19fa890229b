/**
 * Small blobs (manifests, configs, index files, tiny packages) kept in
 * memory: at thousands of requests a second, an open/stat/read/close per
 * 8 KiB response costs more than the bytes. Content is immutable and named by
 * its digest, so a cached copy never goes stale; the cache is bounded in
 * bytes and evicts the least recently used.
 */
export const SMALL_BLOB_MAX = 64 * 1024;

export class SmallBlobCache {
  private readonly map = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly capacity = 32 * 1024 * 1024) {}

  get(sha256: string): Buffer | undefined {
    const b = this.map.get(sha256);
    if (b) {
      // re-insert: Map keeps insertion order, so the first key is the least recently used
      this.map.delete(sha256);
      this.map.set(sha256, b);
    }
    return b;
  }

  set(sha256: string, body: Buffer): void {
    if (body.length > SMALL_BLOB_MAX || this.map.has(sha256)) return;
    this.map.set(sha256, body);
    this.bytes += body.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.capacity) break;
      this.map.delete(k);
      this.bytes -= v.length;
    }
  }
}
