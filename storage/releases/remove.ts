/**
 * Takes releases out of the cache (gc of releases that are not kept). The
 * stored envelopes are the index's source of truth (paths.ts) and what
 * readers such as `serve` consult, so a release is gone once its envelope
 * file is; the caller then rebuilds the level index once (cheap: no
 * re-hashing). Accepted serials are kept on purpose: forgetting a release
 * must not let an older serial back in.
 */
import { rm } from 'node:fs/promises';
import { envelopePath } from '../paths.js';
import { removeOutline } from './outline.js';

export async function forgetReleases(cacheDir: string, releases: string[]): Promise<void> {
  for (const r of releases) {
    await rm(envelopePath(cacheDir, r), { force: true });
    await removeOutline(cacheDir, r);
  }
}
