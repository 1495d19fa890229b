/**
 * Before any byte is downloaded: enough free disk on the staging and the
 * install filesystems (ENOSPACE naming which is short, by how much) and
 * enough free memory (EMEMORY). Figures are the kernel's: statfs and
 * /proc/meminfo's MemAvailable.
 */
import { AirlockError } from '../manifests/errors.js';
import { humanBytes } from '../common/output.js';
import { freeDiskBytes, freeMemoryBytes, type FreeDisk } from '../storage/support/probe.js';

export interface PreflightNeeds {
  /** staging folder and bytes still to download there (plus work copies for installers) */
  staging: { path: string; bytes: number };
  /** install root and bytes the install will write (0 with --download-only) */
  install: { path: string; bytes: number };
  margin: number;
  memoryFloor: number;
  roles: readonly string[];
}

export interface PreflightReport {
  disks: Array<{ what: string; path: string; device: number; needed: number; free: number }>;
  memory: { needed: number; available: number };
}

/** Where the figures come from: the kernel's (storage/support/probe.ts) unless a caller hands in others. */
export interface PreflightProbes {
  disk(path: string): Promise<Pick<FreeDisk, 'free' | 'device'>>;
  memory(): number;
}

const kernel: PreflightProbes = { disk: freeDiskBytes, memory: freeMemoryBytes };

export async function preflight(n: PreflightNeeds, probes: PreflightProbes = kernel): Promise<PreflightReport> {
  const disks: PreflightReport['disks'] = [];
  for (const [what, spec] of [
    ['staging', n.staging],
    ['install root', n.install],
  ] as const) {
    const { free, device } = await probes.disk(spec.path);
    const same = disks.find((d) => d.device === device);
    if (same) {
      // one filesystem holds both: the needs add up
      same.needed += spec.bytes;
      same.what = `${same.what} and ${what}`;
    } else disks.push({ what, path: spec.path, device, needed: spec.bytes + n.margin, free });
  }
  for (const d of disks) {
    if (d.free < d.needed) {
      throw new AirlockError(
        'ENOSPACE',
        `not enough free disk for the ${d.what} at ${d.path}: need ${humanBytes(d.needed)} (incl. ${humanBytes(n.margin)} margin), ${humanBytes(d.free)} free, short by ${humanBytes(d.needed - d.free)}`,
        { what: d.what, path: d.path, needed: d.needed, free: d.free },
      );
    }
  }
  const available = probes.memory();
  if (available < n.memoryFloor) {
    throw new AirlockError(
      'EMEMORY',
      `not enough free memory: need ${humanBytes(n.memoryFloor)} for roles [${n.roles.join(', ') || 'none'}], ${humanBytes(available)} available, short by ${humanBytes(n.memoryFloor - available)}`,
      { needed: n.memoryFloor, available },
    );
  }
  return { disks, memory: { needed: n.memoryFloor, available } };
}
