/**
 * Refuse early instead of failing half-way: disk (the missing bytes plus a
 * margin, measured on `cache_dir`'s filesystem) and a modest memory floor
 * (staging streams to disk, so the cache node needs little: 256 MiB free by
 * default). Both run before anything is downloaded; `--skip-preflight`
 * bypasses them.
 */
import { AirlockError } from '../../manifests/index.js';
import { humanBytes } from '../../common/output.js';
import { freeMemoryBytes } from '../../storage/support/probe.js';
import type { StagePlan } from './plan.js';

export const DEFAULT_MEMORY_FLOOR = 256 * 2 ** 20;

export function preflight(plan: StagePlan, opts: { memoryFloor?: number; freeMemory?: number } = {}): void {
  const { needed, free, filesystemOf } = plan.space;
  if (needed > free) {
    throw new AirlockError(
      'ENOSPACE',
      `not enough free disk for release ${plan.release}: need ${humanBytes(needed)} (${humanBytes(plan.bytes.missing)} missing + margin), ` +
        `${humanBytes(free)} free on the filesystem of ${filesystemOf} (--skip-preflight to try anyway)`,
      { needed, free, missing: plan.bytes.missing, filesystem: filesystemOf },
    );
  }
  const floor = opts.memoryFloor ?? DEFAULT_MEMORY_FLOOR;
  const mem = opts.freeMemory ?? freeMemoryBytes();
  if (mem < floor) {
    throw new AirlockError(
      'EMEMORY',
      `not enough free memory to stage: need ${humanBytes(floor)}, ${humanBytes(mem)} free (--memory-floor to change, --skip-preflight to try anyway)`,
      { needed: floor, free: mem },
    );
  }
}
