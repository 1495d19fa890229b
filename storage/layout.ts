/**
 * Is a folder an airlock cache? The layout (paths.ts, LAYOUT_VERSION 1) has
 * no version file; its marker is `index/`, the release records folder that
 * every writer (`openStore({ write: true })`: stage, import, verify, gc…)
 * creates before anything else. A cache that holds no release yet has it;
 * a mistyped `--cache-dir`, an unmounted disk or an empty folder does not.
 */
import { stat } from 'node:fs/promises';
import { AirlockError } from '../manifests/errors.js';
import { indexDir, LAYOUT_VERSION } from './paths.js';

export async function hasCacheLayout(cacheDir: string): Promise<boolean> {
  return stat(indexDir(cacheDir)).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** EUSAGE naming the folder unless it holds an airlock cache (layout version 1). */
export async function assertCacheLayout(cacheDir: string, what = 'cache_dir'): Promise<void> {
  if (await hasCacheLayout(cacheDir)) return;
  const exists = await stat(cacheDir).then(
    (s) => (s.isDirectory() ? 'folder' : 'file'),
    () => null,
  );
  const found = exists === null ? 'does not exist' : exists === 'file' ? 'is not a folder' : 'holds no airlock cache (no index/ folder)';
  throw new AirlockError(
    'EUSAGE',
    `${what} ${cacheDir} ${found}: a cache is made by the first "airlock stage" or "airlock import" there; check --cache-dir, cache_dir in the config, or that its disk is mounted`,
    { cacheDir, layoutVersion: LAYOUT_VERSION },
  );
}
