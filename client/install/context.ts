/** What every installer gets: where to install, where staged bytes are, and the config's command overrides. */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Output } from '../../common/output.js';
import { AirlockError } from '../../manifests/errors.js';
import { assertSafePath } from '../../manifests/index.js';
import type { InstallerCommands } from '../config.js';
import { workDir, type StatePaths } from '../state.js';
import { createNew } from './fence.js';
import type { BlobSource } from './source.js';

export interface InstallContext {
  /** the install root (`/` = the real system) */
  root: string;
  release: string;
  state: StatePaths;
  source: BlobSource;
  commands: InstallerCommands;
  out: Output;
  /** the one clock reading of this run (backup names) */
  now: Date;
}

export interface StepOutcome {
  /** one line for the journal and the summary */
  note: string;
  backups?: string[];
}

/** `/s/code/router` (absolute inside the root) → ROOT/s/code/router; EPATH when it climbs out. */
export function underRoot(root: string, absolute: string, where: string): string {
  if (!absolute.startsWith('/')) {
    throw new AirlockError('EPATH', `${where}: install path "${absolute}" must be absolute (it is placed under --root)`, { path: absolute });
  }
  const rel = absolute.replace(/^\/+/, '').replace(/\/+$/, '');
  if (rel === '') return root;
  assertSafePath(rel, `${where}: install path`);
  return join(root, ...rel.split('/'));
}

/**
 * Copies a staged blob into `STATE/work/` for installers that need a file
 * name (dpkg, gem), re-checking its digest on the way: the work copy is what
 * the installer reads, so it is what must match.
 */
export async function materialize(ctx: InstallContext, digest: string, size: number, name: string): Promise<string> {
  const dest = join(workDir(ctx.state), name);
  const hash = createHash('sha256');
  let length = 0;
  // a fresh file, never through a link left at the name
  await rm(dest, { force: true });
  const fh = await createNew(dest, 0o600);
  try {
    for await (const chunk of await ctx.source.read(digest)) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
      await fh.write(chunk as Buffer);
    }
  } finally {
    await fh.close();
  }
  const found = hash.digest('hex');
  if (found !== digest || length !== size) {
    await rm(dest, { force: true });
    throw new AirlockError('EINTEGRITY', `${name}: staged copy changed (expected sha256 ${digest}, ${size} bytes; found ${found}, ${length} bytes)`, {
      expected: digest,
      found,
    });
  }
  return dest;
}

export const backupSuffix = (now: Date): string => `.airlock-bak-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
