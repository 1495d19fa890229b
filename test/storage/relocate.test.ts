/**
 * relocate onto real small filesystems (tmpfs mounts made for the test):
 * refused when too small; SIGKILLed at each phase of the compiled CLI and run
 * again: the config always names one valid, complete cache.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { openStore } from '../../storage/index.js';
import { journalPath, relocate } from '../../storage/relocate.js';
import { openFilled, randomBlob, root1Bytes, sampleRelease, snapshot, tmp, fileArt, signRelease, fill } from './bundle/fixtures.js';

const REPO = join(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'dist', 'server', 'cli', 'main.js');
let dir: string;
let small: string;
let big: string;
const mounts: string[] = [];

function mountTmpfs(at: string, size: string): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at]);
  if (r.status !== 0) throw new Error(`mount tmpfs at ${at} failed: ${r.stderr.toString()}`);
  mounts.push(at);
}

beforeAll(async () => {
  dir = await tmp('airlock-relocate-');
  small = join(dir, 'small');
  big = join(dir, 'big');
  await mkdir(small);
  await mkdir(big);
  mountTmpfs(small, '1m');
  mountTmpfs(big, '96m');
  // the CLI as operators run it
  const tsc = spawnSync('npx', ['tsc', '-p', '.'], { cwd: REPO, encoding: 'utf8' });
  if (!existsSync(CLI)) throw new Error(`build failed: ${tsc.stdout}${tsc.stderr}`);
}, 180_000);

afterAll(async () => {
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
/** A cache with two releases (many files) and a config file with other keys and a comment. */
async function makeCache(): Promise<{ cache: string; config: string; blobs: number }> {
  const home = join(dir, `site${n++}`);
  await mkdir(home);
  const r = sampleRelease('3.6.2', 17, { file: 300_000, layer: 1_000_000 });
  const store = await openFilled(join(home, 'cache'), r.envelope, r.blobs);
  const extra = Array.from({ length: 12 }, () => randomBlob(50_000));
  await fill(store, signRelease({ release: '3.6.3', serial: 18, artifacts: extra.map((b, i) => fileArt(`f/${i}.bin`, b)) }), extra);
  await store.close();
  await writeFile(join(home, 'root.json'), root1Bytes);
  const config = join(home, 'airlock.yml');
  await writeFile(config, '# site config\ncache_dir: ./cache  # the disk\ntrust: ./root.json\nparallel: 4\n');
  return { cache: join(home, 'cache'), config, blobs: r.blobs.length + extra.length };
}

async function configCacheDir(config: string): Promise<string> {
  return (parse(await readFile(config, 'utf8')) as { cache_dir: string }).cache_dir;
}

/** The config's cache_dir holds both releases, ready, every blob verifying. */
async function assertConsistent(config: string, home: string): Promise<string> {
  const raw = await configCacheDir(config);
  const cacheDir = raw.startsWith('/') ? raw : join(home, raw);
  const store = await openStore({ cacheDir });
  try {
    expect((await store.status('3.6.2')).ready).toBe(true);
    expect((await store.status('3.6.3')).ready).toBe(true);
    const snap = await snapshot(store);
    expect(snap.corrupt).toEqual([]);
    expect(snap.blobs.length).toBe(18);
  } finally {
    await store.close();
  }
  const text = await readFile(config, 'utf8');
  expect(text).toContain('# site config');
  expect(parse(text)).toMatchObject({ trust: './root.json', parallel: 4 });
  return cacheDir;
}

function runCli(args: string[], env: Record<string, string> = {}, killOn?: RegExp): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (killOn && killOn.test(stderr)) child.kill('SIGKILL');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('relocate', () => {
  it('refuses a filesystem that is too small (ENOSPACE, needed vs free), changing nothing', async () => {
    const { cache, config } = await makeCache();
    const before = await readFile(config, 'utf8');
    await expect(relocate({ from: cache, to: join(small, 'cache'), configFile: config })).rejects.toMatchObject({
      code: 'ENOSPACE',
      message: expect.stringMatching(/bytes free, the cache needs/),
    });
    expect(await readFile(config, 'utf8')).toBe(before);
    expect(existsSync(journalPath(cache))).toBe(false);
    expect(await readdir(small)).toEqual([]);
    // and through the CLI: exit status 4
    const r = await runCli(['relocate', join(small, 'cache'), '--config', config]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/ENOSPACE/);
  });

  it('moves the cache, verifies it, switches the config keeping other keys, removes the old copy', async () => {
    const { cache, config } = await makeCache();
    const to = join(big, `moved${n++}`);
    const r = await runCli(['relocate', to, '--config', config]);
    expect(r.stderr + r.stdout).toMatch(/relocated/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no airlock serve was serving from /);
    expect(await configCacheDir(config)).toBe(to);
    await assertConsistent(config, dir);
    expect(existsSync(cache)).toBe(false);
    expect(existsSync(journalPath(to))).toBe(false);
    // again: nothing to do
    const again = await runCli(['relocate', to, '--config', config]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing to do/);
  });

  it('--keep-old keeps the old copy intact', async () => {
    const { cache, config } = await makeCache();
    const to = join(big, `kept${n++}`);
    await relocate({ from: cache, to, configFile: config, keepOld: true });
    expect(await configCacheDir(config)).toBe(to);
    const old = await openStore({ cacheDir: cache });
    expect((await old.status('3.6.2')).ready).toBe(true);
    await old.close();
    expect(existsSync(journalPath(cache))).toBe(false);
  });

  it('hands each pause point to an injected hook, in order; a run stopped at one is finished by the next', async () => {
    const { cache, config } = await makeCache();
    const home = join(cache, '..');
    const to = join(big, `hooked${n++}`);
    const seen: string[] = [];
    const stop = new Error('stopped by the test');
    const stopped = relocate({
      from: cache,
      to,
      configFile: config,
      hooks: {
        pause: async (point) => {
          seen.push(point);
          if (point === 'verified') throw stop;
        },
      },
    });
    await expect(stopped).rejects.toBe(stop);
    expect(seen).toEqual(['copying', 'verified']);
    expect(await assertConsistent(config, home)).toBe(cache);

    const rest: string[] = [];
    await relocate({ from: cache, to, configFile: config, hooks: { pause: async (point) => void rest.push(point) } });
    // (files NEW's rebuilt index changed are copied again, so a copy pause may come first)
    expect(rest.filter((p) => p !== 'copying' && p !== 'removing')).toEqual(['verified', 'switched']);
    expect(rest.at(-1)).toBe('removing');
    expect(await assertConsistent(config, home)).toBe(to);
    expect(existsSync(cache)).toBe(false);
  });

  for (const point of ['copying', 'verified', 'switched', 'removing']) {
    it(`SIGKILL at "${point}", then the same command again: one valid cache, config consistent`, async () => {
      const { cache, config } = await makeCache();
      const home = join(cache, '..');
      const to = join(big, `killed-${point}-${n++}`);
      const killed = await runCli(['relocate', to, '--config', config], { AIRLOCK_TEST_RELOCATE_PAUSE: point }, /paused at/);
      expect(killed.signal).toBe('SIGKILL');
      expect(killed.stderr).toContain(`paused at ${point}`);
      // right after the kill: the config names a complete, valid cache
      const now = await assertConsistent(config, home);
      expect(now).toBe(point === 'copying' || point === 'verified' ? cache : to);
      // run again: finishes the job
      const again = await runCli(['relocate', to, '--config', config]);
      expect(again.stderr).not.toMatch(/EINTERNAL/);
      expect(again.code).toBe(0);
      expect(await assertConsistent(config, home)).toBe(to);
      expect(existsSync(cache)).toBe(false);
      expect(existsSync(journalPath(to))).toBe(false);
    }, 60_000);
  }
});
