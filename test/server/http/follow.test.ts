/**
 * server/http/follow.ts in-process: which folder a reload moves to (the
 * config's changed cache_dir, else the old folder's relocate journal), what
 * keeps the current one (nothing changed, a broken config, a folder that is
 * not there), and the registration moving with it.
 */
import { cp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { followingStore } from '../../../server/http/follow.js';
import { openStore } from '../../../storage/index.js';
import { journalPath } from '../../../storage/relocate.js';
import { servingDir } from '../../../storage/serving.js';
import { fileArtifact, makeRelease, sha, tmp } from '../../storage/fixtures.js';

const BODY = Buffer.from('served wherever the cache is\n');
const quiet = pino({ level: 'silent' });
const entries = (dir: string): Promise<string[]> => readdir(servingDir(dir)).catch(() => []);

async function cache(dir: string): Promise<void> {
  const store = await openStore({ cacheDir: dir, write: true });
  await store.ingestStream({ sha256: sha(BODY), size: BODY.length }, Readable.from([BODY]));
  await store.putRelease(makeRelease('1.0.0', [fileArtifact('f.txt', BODY)]));
  await store.close();
}

describe('followingStore', () => {
  it('follows a changed cache_dir in the config, and only a change: the same value again does not go back', async () => {
    const base = await tmp();
    const [a, b] = [join(base, 'a'), join(base, 'b')];
    await cache(a);
    await cp(a, b, { recursive: true });
    let configured = a;
    const f = await followingStore({ cacheDir: a, configuredCacheDir: () => configured, logger: quiet, signal: null });
    try {
      expect(await entries(a)).toEqual([`${process.pid}.json`]);
      expect(await f.reload('test')).toBe(a);
      configured = b;
      expect(await f.reload('test')).toBe(b);
      expect(await entries(a)).toEqual([]);
      expect(await entries(b)).toEqual([`${process.pid}.json`]);
      await rm(a, { recursive: true, force: true });
      expect((await f.store.stat(sha(BODY)))?.size).toBe(BODY.length);
      expect((await f.store.listReleases()).map((r) => r.release)).toEqual(['1.0.0']);
      expect(f.store.cacheDir).toBe(b);
    } finally {
      await f.close();
    }
    expect(await entries(b)).toEqual([]);
  });

  it('with cache_dir fixed (--cache-dir), follows the old folder\'s relocate journal once it says switched', async () => {
    const base = await tmp();
    const [a, b] = [join(base, 'a'), join(base, 'b')];
    await cache(a);
    await cp(a, b, { recursive: true });
    const f = await followingStore({ cacheDir: a, configuredCacheDir: () => a, logger: quiet, signal: null });
    try {
      await writeFile(journalPath(a), JSON.stringify({ phase: 'verified', from: a, to: b }));
      expect(await f.reload('test')).toBe(a);
      await writeFile(journalPath(a), JSON.stringify({ phase: 'switched', from: a, to: b }));
      expect(await f.reload('test')).toBe(b);
      expect(f.cacheDir()).toBe(b);
    } finally {
      await f.close();
    }
  });

  it('keeps the current folder when the config cannot be read or names a folder that is not there (yet: a later reload takes it)', async () => {
    const base = await tmp();
    const a = join(base, 'a');
    await cache(a);
    let configured: () => string = () => {
      throw new Error('config broken');
    };
    const f = await followingStore({ cacheDir: a, configuredCacheDir: () => configured(), logger: quiet, signal: null });
    try {
      expect(await f.reload('test')).toBe(a);
      configured = () => join(base, 'late');
      expect(await f.reload('test')).toBe(a);
      expect((await f.store.stat(sha(BODY)))?.size).toBe(BODY.length);
      expect(await entries(a)).toEqual([`${process.pid}.json`]);
      // the folder appears (a disk mounted late): the next reload takes it
      await cp(a, join(base, 'late'), { recursive: true, filter: (src) => !src.startsWith(servingDir(a)) });
      expect(await f.reload('test')).toBe(join(base, 'late'));
    } finally {
      await f.close();
    }
  });
});
