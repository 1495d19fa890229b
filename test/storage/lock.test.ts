import { mkdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireWriterLock, isLocked, readLockInfo, type LockInfo } from '../../storage/lock.js';
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

  it('a waiting writer gets the lock once the holder lets go; while it holds it, the next is refused naming it; after release, nobody holds it', async () => {
    const first = await acquireWriterLock(dir, { command: 'airlock gc' });
    const t0 = Date.now();
    setTimeout(() => void first.release(), 300);
    const second = await acquireWriterLock(dir, { waitMs: 3000, command: 'airlock stage r.json' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(await readLockInfo(dir)).toMatchObject({ pid: process.pid, command: 'airlock stage r.json', since: second.info.since });
    expect(await isLocked(dir)).toBe(true);
    const err = await acquireWriterLock(dir, { waitMs: 0 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ELOCKED', details: { holder: { pid: process.pid, command: 'airlock stage r.json' } } });
    expect((err as Error).message).toMatch(new RegExp(`^cache ${dir} is locked by pid ${process.pid} on .*\\("airlock stage r\\.json", since `));
    await second.release();
    expect(await readLockInfo(dir)).toBeNull();
    expect(await isLocked(dir)).toBe(false);
    // free at once for the next writer
    const third = await acquireWriterLock(dir, { waitMs: 0, command: 'airlock verify' });
    expect((await readLockInfo(dir))?.command).toBe('airlock verify');
    await third.release();
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

  /** The lock folder and lock.info as a holder leaves them when SIGKILLed a moment ago (mtime fresh). */
  async function leftByKilled(identity: 'same' | 'other'): Promise<void> {
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid!;
    await mkdir(join(dir, 'lock'));
    const s = await stat(join(dir, 'lock'));
    const lock = identity === 'same' ? { ino: s.ino, birthtimeMs: s.birthtimeMs } : { ino: s.ino + 1, birthtimeMs: s.birthtimeMs - 5000 };
    const info: LockInfo = { pid: dead, hostname: hostname(), command: 'airlock-node upgrade', since: new Date().toISOString(), lock };
    await writeFile(join(dir, 'lock.info'), JSON.stringify(info));
  }

  it('the lock folder a SIGKILLed holder made is taken over at once, though refreshed just now', async () => {
    await leftByKilled('same');
    const t0 = Date.now();
    const l = await acquireWriterLock(dir, { waitMs: 0 });
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await readLockInfo(dir)).toMatchObject({ pid: process.pid, lock: { ino: (await stat(join(dir, 'lock'))).ino } });
    await l.release();
  });

  it('a fresh lock folder that a dead holder\'s lock.info does not describe is left alone (someone just took it)', async () => {
    await leftByKilled('other');
    const err = await acquireWriterLock(dir, { waitMs: 0, what: 'state dir' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ELOCKED' });
    expect((err as Error).message).toMatch(/^state dir .* is locked by pid \d+ on .*"airlock-node upgrade", since/);
  });

  it('release twice is harmless and does not remove the next holder\'s lock.info', async () => {
    const first = await acquireWriterLock(dir);
    await first.release();
    const second = await acquireWriterLock(dir, { waitMs: 0 });
    await first.release();
    expect((await readLockInfo(dir))?.pid).toBe(process.pid);
    expect(await readLockInfo(dir)).toMatchObject({ since: second.info.since });
    await second.release();
    expect(await readLockInfo(dir)).toBeNull();
  });

  it('lock.info replaces a link planted at its name instead of writing through it', async () => {
    await writeFile(join(dir, 'elsewhere'), 'theirs');
    await symlink(join(dir, 'elsewhere'), join(dir, 'lock.info'));
    const l = await acquireWriterLock(dir);
    expect((await readLockInfo(dir))?.pid).toBe(process.pid);
    expect(await readFile(join(dir, 'elsewhere'), 'utf8')).toBe('theirs');
    await l.release();
  });

  it('a lock of another host is ELOCKED naming that holder while fresh, and taken once older than staleMs', async () => {
    await mkdir(join(dir, 'lock'));
    const since = new Date(Date.now() - 60_000);
    await writeFile(join(dir, 'lock.info'), JSON.stringify({ pid: 1, hostname: 'elsewhere', command: 'airlock import b.tar', since: since.toISOString() }));
    // refreshed just now (its holder lives on the other host): refused, naming it
    const err = await acquireWriterLock(dir, { waitMs: 0, staleMs: 5000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ELOCKED', details: { holder: { pid: 1, hostname: 'elsewhere' } } });
    expect((err as Error).message).toContain(`is locked by pid 1 on elsewhere ("airlock import b.tar", since ${since.toISOString()})`);
    // not refreshed for longer than staleMs: taken over, and lock.info names the new holder
    await utimes(join(dir, 'lock'), since, since);
    const l = await acquireWriterLock(dir, { waitMs: 0, staleMs: 5000, command: 'airlock gc' });
    expect(await readLockInfo(dir)).toMatchObject({ pid: process.pid, hostname: hostname(), command: 'airlock gc' });
    await l.release();
    expect(await readLockInfo(dir)).toBeNull();
    expect(await isLocked(dir)).toBe(false);
  });
});
