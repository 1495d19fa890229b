/**
 * Where the world's prepared inputs live: `.world-cache/` at the repo root
 * (AIRLOCK_WORLD_CACHE overrides). scripts/setup.sh fills `debs/` from the
 * network once; the gems and the OCI layout are built here on first use,
 * atomically (build in a temp folder, rename), since suites start worlds in
 * parallel and the loser of the rename just uses the winner's copy.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repo root: the nearest folder above this file with airlock's package.json (works from scripts/ and dist/scripts/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'airlock') return dir;
      } catch { /* keep looking */ }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('test world: cannot find the airlock repo root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export function cacheDir(): string {
  return process.env.AIRLOCK_WORLD_CACHE ?? join(repoRoot(), '.world-cache');
}

/** `cache/built/<name>`, made by `build(tmp)` if absent. Bump the name when the recipe changes. */
export async function ensureBuilt(name: string, build: (tmp: string) => Promise<void>): Promise<string> {
  const base = join(cacheDir(), 'built');
  const final = join(base, name);
  if (existsSync(final)) return final;
  mkdirSync(base, { recursive: true });
  const tmp = await mkdtemp(join(base, `.${name}-`));
  try {
    await build(tmp);
    try {
      renameSync(tmp, final);
    } catch (e) {
      if (!existsSync(final)) throw e; // someone else won the race: theirs is as good as ours
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return final;
}
