/** `airlock serve` (the built CLI, as a process): the connection cap from the config and from --max-connections. */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openStore } from '../../../../storage/index.js';
import { AIRLOCK, cleanEnv, runCli } from '../../../support/cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-serve-cli-'));
  // an initialised cache holding no release yet, as the first stage or import leaves it: serve starts on it
  await (await openStore({ cacheDir: join(dir, 'cache'), write: true })).close();
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function config(name: string, extra: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `cache_dir: ${join(dir, 'cache')}\n${extra}`);
  return file;
}

/** starts serve, reads /metrics once, stops it with SIGTERM */
async function metricsOf(args: string[]): Promise<string> {
  const child = spawn(process.execPath, [AIRLOCK, 'serve', '--listen', '127.0.0.1:0', ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 20_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /"address":"(http:\/\/[^"]+)"/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
    });
    return await (await fetch(`${url}/metrics`)).text();
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

it('max_connections in the config sets the cap; --max-connections overrides it', async () => {
  const cfg = await config('cap.yml', 'max_connections: 3\n');
  expect(await metricsOf(['--config', cfg])).toMatch(/^airlock_http_connections_max 3$/m);
  expect(await metricsOf(['--config', cfg, '--max-connections', '2'])).toMatch(/^airlock_http_connections_max 2$/m);
}, 60_000);

it('without either, the cap is the default (1024 at most)', async () => {
  const m = /^airlock_http_connections_max (\d+)$/m.exec(await metricsOf(['--config', await config('plain.yml', '')]));
  expect(Number(m?.[1])).toBeGreaterThanOrEqual(16);
  expect(Number(m?.[1])).toBeLessThanOrEqual(1024);
}, 30_000);

it('a bad cap is one usage line naming the flag or key, exit 2', async () => {
  const flag = await runCli(AIRLOCK, ['serve', '--config', await config('ok.yml', ''), '--listen', '127.0.0.1:0', '--max-connections', '0']);
  expect(flag.code).toBe(2);
  expect(flag.stderr.trim()).toBe('airlock: EUSAGE: --max-connections must be an integer from 1 to 1000000, got "0"');
  const key = await runCli(AIRLOCK, ['serve', '--config', await config('bad.yml', 'max_connections: many\n'), '--listen', '127.0.0.1:0']);
  expect(key.code).toBe(2);
  expect(key.stderr.trim().split('\n')).toHaveLength(1);
  expect(key.stderr).toMatch(/EUSAGE: .*"max_connections"/);
});

it('--help documents the cap', async () => {
  const help = await runCli(AIRLOCK, ['serve', '--help']);
  expect(help.stdout).toContain('--max-connections <n>');
  expect(help.stdout).toMatch(/Config keys:[^]*max_connections/);
});

it('a cache_dir that holds no cache is refused at start, naming the folder: exit 2, EUSAGE', async () => {
  const empty = join(dir, 'not-a-cache');
  await mkdir(empty);
  for (const target of [empty, join(dir, 'no-such-folder')]) {
    const r = await runCli(AIRLOCK, ['serve', '--cache-dir', target, '--listen', '127.0.0.1:0', '--json']);
    expect(r.code).toBe(2);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(last.error.code).toBe('EUSAGE');
    expect(last.error.message).toContain(`cache_dir ${target} `);
    expect(last.error.message).toMatch(/airlock stage|airlock import/);
  }
  const plain = await runCli(AIRLOCK, ['serve', '--cache-dir', empty, '--listen', '127.0.0.1:0']);
  expect(plain.stderr).toMatch(new RegExp(`^airlock: EUSAGE: cache_dir ${empty} holds no airlock cache`));
  expect((await runCli(AIRLOCK, ['serve', '--help'])).stdout).toMatch(/cache_dir must hold an airlock cache/);
}, 30_000);
