/**
 * Takes releases out of the index (gc of releases that are not kept). The
 * stored envelopes are the index's source of truth (paths.ts), so removing a
 * release is: delete its envelope, then rebuild the index from what is left.
 * Accepted serials are kept on purpose: forgetting a release must not let
 * an older serial back in.
 */
import { rm } from 'node:fs/promises';
import type { Store } from './index.js';
import { envelopePath } from './paths.js';

export async function removeReleases(store: Store, releases: string[]): Promise<void> {
  const withDelete = store as Store & { deleteRelease?: (release: string) => Promise<void> };
  if (typeof withDelete.deleteRelease === 'function') {
    for (const r of releases) await withDelete.deleteRelease(r);
    return;
  }
  for (const r of releases) await rm(envelopePath(store.cacheDir, r), { force: true });
  await store.rebuildIndex();
}
