/**
 * Self-update. A release may carry the node client itself as a `file`
 * artifact under `airlock-node/` (e.g. `airlock-node/airlock-node-0.2.0.tgz`,
 * a tarball of the package). Without `--update-client` it is only reported.
 * With it, the tarball is unpacked (safely) into
 * `STATE/client/versions/<version>/` and `STATE/client/current` is switched
 * to it by renaming a new symlink over the old one: at every moment
 * `current` names a complete client, old or new, never a missing one. The
 * operator's `airlock-node` on PATH points at `STATE/client/current/…`.
 * The new client then re-runs the same command.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FileArtifact, ReleaseManifest } from '../manifests/types.js';
import type { Output } from '../common/output.js';
import type { BlobSource } from './install/source.js';
import { extractTar } from './install/tar.js';
import type { StatePaths } from './state.js';

export function ownVersion(): string {
  try {
    const pkg = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.+-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export interface ClientUpdate {
  artifact: FileArtifact;
  version: string;
}

/** The newest `airlock-node` artifact of the release when it is newer than this client. */
export function findClientUpdate(manifest: ReleaseManifest, current = ownVersion()): ClientUpdate | null {
  let best: ClientUpdate | null = null;
  for (const a of manifest.artifacts) {
    if (a.kind !== 'file' || !a.path.startsWith('airlock-node/')) continue;
    const m = /(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?)\.(?:tgz|tar\.gz|tar)$/.exec(a.path);
    if (!m) continue;
    if (compareVersions(m[1]!, current) > 0 && (!best || compareVersions(m[1]!, best.version) > 0)) best = { artifact: a, version: m[1]! };
  }
  return best;
}

export async function installClient(update: ClientUpdate, source: BlobSource, state: StatePaths, out: Output): Promise<string> {
  const base = join(state.dir, 'client');
  const dest = join(base, 'versions', update.version);
  if (!existsSync(join(dest, 'package.json'))) {
    const tmp = `${dest}.partial-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await extractTar(() => source.read(update.artifact.sha256), {
      target: tmp,
      fence: tmp,
      where: update.artifact.path,
      previous: {},
      backupSuffix: '.airlock-bak',
    });
    // npm pack puts everything under package/
    const inner = existsSync(join(tmp, 'package', 'package.json')) ? join(tmp, 'package') : tmp;
    await rm(dest, { recursive: true, force: true });
    await rename(inner, dest);
    await rm(tmp, { recursive: true, force: true });
  }
  const link = join(base, 'current');
  const tmpLink = `${link}.${process.pid}.tmp`;
  await rm(tmpLink, { force: true });
  await symlink(join('versions', update.version), tmpLink);
  await rename(tmpLink, link);
  out.note(`airlock-node ${update.version} installed; ${link} now points at it`);
  return join(link, 'dist', 'client', 'cli', 'main.js');
}

/** Runs the new client with the same arguments (once: the child is told not to update again); returns its exit status. */
export function reexec(mainJs: string, argv: readonly string[]): number {
  const args = argv.filter((a) => a !== '--update-client');
  const r = spawnSync(process.execPath, [mainJs, ...args], { stdio: 'inherit', env: { ...process.env, AIRLOCK_NODE_REEXEC: '1' } });
  return r.status ?? 1;
}
