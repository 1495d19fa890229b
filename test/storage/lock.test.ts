import { mkdir, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireWriterLock, readLockInfo } from '../../storage/lock.js';
import { tmp } from './fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await tmp('airlock-lock-');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('writer lock', () => {
  it('writes who holds it; a second writer waits, then fails with ELOCKED naming the holder', async () => {
    const first = await acquireWriterLock(dir, { command: 'airlock stage r.json' });
    expect(await readLockInfo(dir)).toMatchObject({ pid: process.pid, hostname: hostname(), command: 'airlock stage r.json' });
    const t0 = Date.now();
    const err = await acquireWriterLock(dir, { waitMs: 400 }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(err).toMatchObject({ code: 'ELOCKED' });
    expect((err as Error).message).toMatch(new RegExp(`locked by pid ${process.pid} on .*"airlock stage r.json", since`));
    await first.release();
    expect(await readLockInfo(dir)).toBeNull();
  });

  it('a waiting writer gets the lock once the holder lets go', async () => {
    const first = await acquireWriterLock(dir);
    setTimeout(() => void first.release(), 300);
    const second = await acquireWriterLock(dir, { waitMs: 3000 });
    await second.release();
  });

  it('a lock left by a process that died (SIGKILL) is taken over at once', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid!; // a pid that has exited
    await mkdir(join(dir, 'lock'));
    const old = new Date(Date.now() - 4000);
    await utimes(join(dir, 'lock'), old, old);
    await writeFile(join(dir, 'lock.info'), JSON.stringify({ pid: dead, hostname: hostname(), command: 'x', since: old.toISOString() }));
    const t0 = Date.now();
    const l = await acquireWriterLock(dir, { waitMs: 0 });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect((await readLockInfo(dir))?.pid).toBe(process.pid);
    await l.release();
  });

  it('a stale lock of another host is taken once older than staleMs', async () => {
    await mkdir(join(dir, 'lock'));
    const old = new Date(Date.now() - 60_000);
    await utimes(join(dir, 'lock'), old, old);
    await writeFile(join(dir, 'lock.info'), JSON.stringify({ pid: 1, hostname: 'elsewhere', command: 'x', since: old.toISOString() }));
    const l = await acquireWriterLock(dir, { waitMs: 0, staleMs: 5000 });
    await l.release();
  });
});
