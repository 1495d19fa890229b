/**
 * What the machine has room for, as the kernel counts it: free disk for an
 * unprivileged writer (statfs's bavail) and memory available to a new
 * process (/proc/meminfo's MemAvailable, which counts reclaimable page cache;
 * os.freemem() does not, and reads low on a busy cache node). One probe for
 * stage's and the node's preflights and for relocate.
 */
import { readFileSync } from 'node:fs';
import { stat, statfs } from 'node:fs/promises';
import { freemem } from 'node:os';
import { dirname, resolve } from 'node:path';

export interface FreeDisk {
  /** bytes an unprivileged writer may still use */
  free: number;
  /** the folder measured: `path` or its nearest existing ancestor */
  at: string;
  /** st_dev of `at`: two paths on one filesystem share it */
  device: number;
}

/** Free bytes on the filesystem that holds (or will hold) `path`, measured at its nearest existing ancestor. */
export async function freeDiskBytes(path: string): Promise<FreeDisk> {
  let at = resolve(path);
  for (;;) {
    try {
      const fs = await statfs(at);
      const { dev } = await stat(at);
      return { free: Number(fs.bavail) * Number(fs.bsize), at, device: dev };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const up = dirname(at);
      // not there yet (or a file stands in the way): the folder would be made on its parent's filesystem
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || up === at) throw e;
      at = up;
    }
  }
}

/** MemAvailable of a /proc/meminfo text, in bytes; null when it has none (kernels before 3.14). */
export function memAvailableOf(meminfo: string): number | null {
  const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : null;
}

/** Memory a new allocation can get without swapping: MemAvailable, or os.freemem() where there is none. */
export function freeMemoryBytes(): number {
  try {
    const available = memAvailableOf(readFileSync('/proc/meminfo', 'utf8'));
    if (available !== null) return available;
  } catch {
    // not Linux: the portable figure
  }
  return freemem();
}
