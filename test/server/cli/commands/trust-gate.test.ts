/**
 * Each entry point of the cache node goes through the one trust gate
 * (manifests/gate.ts, unit-tested in test/manifests/gate.test.ts): the same
 * clock extension for the local root, and the root from a local file only.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../../../server/cli/program.js';
import { AIRLOCK, NODE_CLI, REPO, runCli, runCmd } from '../../../support/cli.js';
import { readTar, writeTar } from '../../../storage/bundle/tarlib.js';
import { exportBundle } from '../../../../storage/bundle/index.js';
import { openFilled, releaseKey, root1Bytes, rootKey, rootPayload, sampleRelease, signRoot, tmp } from '../../../storage/bundle/fixtures.js';

let dir: string;

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((stdout += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((stderr += String(c)), true));
  process.exitCode = 0;
  try {
    await buildProgram().exitOverride().parseAsync(['node', 'airlock', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, stdout, stderr };
}

const DAY = 86_400_000;
const isoDate = (t: number): string => new Date(t).toISOString().slice(0, 10);
/** root v1 of the bundle fixtures' keys, already expired today */
const expiredRoot = signRoot({ ...rootPayload(1, [rootKey], [releaseKey]), expires: '2026-01-01T00:00:00Z' }, [rootKey]);

beforeEach(async () => {
  dir = await tmp('airlock-gate-');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('airlock import and an expired local trust root', () => {
  async function bundle(): Promise<string> {
    const r = sampleRelease();
    const src = await openFilled(join(dir, 'src'), r.envelope, r.blobs);
    const out = join(dir, 'b.tar');
    try {
      await exportBundle(src, '3.6.2', { out, roots: [] });
    } finally {
      await src.close();
    }
    await writeFile(join(dir, 'root.json'), expiredRoot);
    return out;
  }

  it('refuses without --accept-expired-until, imports with it and warns', async () => {
    const b = await bundle();
    const common = ['--trust', join(dir, 'root.json'), '--cache-dir', join(dir, 'dst')];
    const refused = await run('import', b, ...common);
    expect(refused.code, refused.stderr).toBe(3);
    expect(refused.stderr).toMatch(/EEXPIRED.*trust root version 1 expired/);

    const ok = await run('import', b, ...common, '--accept-expired-until', isoDate(Date.now() + 30 * DAY));
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr + ok.stdout).toMatch(/trust root version 1 expired at 2026-01-01.*--accept-expired-until/);
    expect(ok.stdout).toMatch(/imported stackato 3\.6\.2/);
  });
});

describe('a bundle\'s root chain streams through the gate', () => {
  it('200 junk root entries of 1 MiB: refused at the first one, peak RSS ≤ 150 MiB', async () => {
    const r = sampleRelease();
    const src = await openFilled(join(dir, 'src'), r.envelope, r.blobs);
    const good = join(dir, 'good.tar');
    try {
      await exportBundle(src, '3.6.2', { out: good, roots: [root1Bytes] });
    } finally {
      await src.close();
    }
    const items = await readTar(good);
    const junk = Buffer.alloc(1024 * 1024 - 512, 'x'); // one buffer, 200 entries: the test itself stays small
    const roots = Array.from({ length: 200 }, (_, i) => ({ header: { name: `root/${i + 2}.json` }, body: junk }));
    const hostile = join(dir, 'hostile.tar');
    await writeTar(hostile, [items[0]!, items[1]!, ...roots, ...items.slice(2)]);
    await writeFile(join(dir, 'root.json'), root1Bytes);

    const run = await runCmd(process.execPath, [
      '--import',
      join(REPO, 'test', 'support', 'peak-rss.mjs'),
      AIRLOCK,
      'import',
      hostile,
      '--trust',
      join(dir, 'root.json'),
      '--cache-dir',
      join(dir, 'dst'),
    ]);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toMatch(/EMANIFEST.*root\/2\.json/);
    const peakKiB = Number(/peak-rss-kib (\d+)/.exec(run.stderr)?.[1]);
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB / 1024).toBeLessThanOrEqual(150);
  });
});

describe('the trust root is a local file, never a URL', () => {
  let server: Server;
  let hits = 0;
  let base = '';
  beforeEach(async () => {
    hits = 0;
    server = createServer((_req, res) => {
      hits++;
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => new Promise<void>((r) => server.close(() => r())));

  it.each([
    ['stage', () => ['stage', `${base}/release.json`, '--cache-dir', join(dir, 'c')]],
    ['stage --plan', () => ['stage', '--plan', `${base}/release.json`, '--cache-dir', join(dir, 'c')]],
    ['import', () => ['import', join(dir, 'none.tar'), '--cache-dir', join(dir, 'c')]],
    ['manifest verify', () => ['manifest', 'verify', join(dir, 'release.json')]],
  ])('%s: --trust URL is EUSAGE (exit 2) and nothing is fetched', async (_name, args) => {
    const r = await run(...args(), '--trust', `${base}/root.json`);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/EUSAGE.*must be a local file got out of band, not a URL/);
    expect(r.stderr.split('\n').filter((l) => l.trim())).toHaveLength(1);
    expect(hits).toBe(0);
  });

  it('"trust" in the config file as a URL is EUSAGE naming the key', async () => {
    await writeFile(join(dir, 'airlock.yml'), `trust: ${base}/root.json\ncache_dir: ${join(dir, 'c')}\n`);
    const r = await run('stage', `${base}/release.json`, '--config', join(dir, 'airlock.yml'));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/EUSAGE.*key "trust" must be a local path, not a URL/);
    expect(hits).toBe(0);
  });

  it('airlock-node upgrade --trust URL is EUSAGE too, before the cache is asked', async () => {
    const r = await runCli(NODE_CLI, ['upgrade', '--cache', base, '--trust', `${base}/root.json`, '--state-dir', join(dir, 'state'), '--root', join(dir, 'root')]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/EUSAGE.*must be a local file got out of band, not a URL/);
    expect(hits).toBe(0);
  });
});
