/**
 * Opens a stored blob for serving: one `open` and one `fstat` of that same
 * descriptor, so the size we promise in Content-Length is the size of the
 * file we then read (a stat by path and a later open could see two files).
 *
 * Only the filesystem backend has descriptors; any other backend answers
 * null here and is served through its own `read` stream (send-blob.ts).
 */
import { close, fstat, open } from 'node:fs';
import type { FsBlobBackend, Store } from '../../storage/index.js';
// straight from the path mapper, not the storage facade: the facade also loads the got-based fetcher, which serving never uses
import { blobPath } from '../../storage/paths.js';

export interface OpenBlob {
  fd: number;
  size: number;
}

/** the filesystem backend's root, or null for any other backend */
export function fsRootOf(store: Store): string | null {
  const root = (store.backend as Partial<FsBlobBackend>).root;
  return typeof root === 'string' ? root : null;
}

/** null when there is no such blob */
export function openBlob(root: string, sha256: string): Promise<OpenBlob | null> {
  return new Promise((resolve, reject) => {
    open(blobPath(root, sha256), 'r', (err, fd) => {
      if (err) return err.code === 'ENOENT' ? resolve(null) : reject(err);
      fstat(fd, (e, st) => {
        if (e) {
          close(fd, () => reject(e));
          return;
        }
        resolve({ fd, size: st.size });
      });
    });
  });
}

export function closeBlob(b: OpenBlob): void {
  close(b.fd, () => {});
}
