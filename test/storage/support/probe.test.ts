import { rm, stat, statfs, writeFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freeDiskBytes, freeMemoryBytes, memAvailableOf } from '../../../storage/support/probe.js';
import { tmp } from '../fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await tmp('airlock-probe-');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('freeDiskBytes', () => {
  it("measures an existing folder with statfs's bavail", async () => {
    const fs = await statfs(dir);
    const d = await freeDiskBytes(dir);
    expect(d.at).toBe(dir);
    expect(d.device).toBe((await stat(dir)).dev);
    // other writers on the disk move the figure a little between the two calls
    expect(Math.abs(d.free - fs.bavail * fs.bsize)).toBeLessThan(64 * 2 ** 20);
  });

  it('a folder not made yet is measured at its nearest existing ancestor', async () => {
    const d = await freeDiskBytes(join(dir, 'a', 'b', 'c'));
    expect(d.at).toBe(dir);
    expect(d.device).toBe((await stat(dir)).dev);
  });

  it('a file standing in the way is measured itself (same filesystem)', async () => {
    await writeFile(join(dir, 'f'), 'x');
    const d = await freeDiskBytes(join(dir, 'f', 'sub'));
    expect(d.at).toBe(join(dir, 'f'));
  });

  it('resolves a relative path', async () => {
    const d = await freeDiskBytes('.');
    expect(d.at).toBe(process.cwd());
  });
});

describe('freeMemoryBytes', () => {
  it('reads MemAvailable in bytes; none when the kernel has no such line', () => {
    expect(memAvailableOf('MemTotal:       16311948 kB\nMemFree:  1000 kB\nMemAvailable:    8154440 kB\n')).toBe(8154440 * 1024);
    expect(memAvailableOf('MemTotal:       16311948 kB\nMemFree:  1000 kB\n')).toBeNull();
  });

  it('is a positive figure no larger than the machine', () => {
    const m = freeMemoryBytes();
    expect(m).toBeGreaterThan(0);
    expect(m).toBeLessThanOrEqual(totalmem());
  });
});
