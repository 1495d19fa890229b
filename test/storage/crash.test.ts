/**
 * SIGKILL a writer mid-write, then check the store: the lock is recovered,
 * every blob verifies, no partial is ever readable, and an interrupted
 * download resumes from its partial with only the remainder on the wire.
 * The child runs the storage code transpiled into a folder inside the repo's
 * node_modules (so its imports of level/proper-lockfile resolve).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryFetcher, openStore } from '../../storage/index.js';
import { tmp } from './fixtures.js';

const REPO = resolve(import.meta.dirname, '../..');
const CHILD = join(import.meta.dirname, 'crash-child.mjs');
let outDir: string;
let lib: string;

beforeAll(async () => {
  outDir = await mkdtemp(join(REPO, 'node_modules', '.airlock-crash-'));
  // transpile (no type check) storage/, common/ and manifests/ file by file: fast, and independent of
  // the state of other folders being edited meanwhile
  for (const folder of ['storage', 'common', 'manifests']) {
    for (const rel of await readdir(join(REPO, folder), { recursive: true })) {
      if (!rel.endsWith('.ts')) continue;
      const source = await readFile(join(REPO, folder, rel), 'utf8');
      const js = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      }).outputText;
      await mkdir(dirname(join(outDir, folder, rel)), { recursive: true });
      await writeFile(join(outDir, folder, rel.replace(/\.ts$/, '.js')), js);
    }
  }
  lib = join(outDir, 'storage', 'index.js');
  await stat(lib);
}, 120_000);

afterAll(async () => {
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

type Line = Record<string, unknown>;

/** Starts the child and resolves once `until` matched a line; then SIGKILLs it. */
async function runAndKill(cacheDir: string, mode: string, until: (l: Line, all: Line[]) => boolean, env: Record<string, string> = {}): Promise<Line[]> {
  const child: ChildProcess = spawn(process.execPath, [CHILD, lib, cacheDir, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  const lines: Line[] = [];
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise<void>((resolveKill, reject) => {
    const timer = setTimeout(() => reject(new Error('child never reached the kill point')), 30_000);
    createInterface({ input: child.stdout! }).on('line', (text) => {
      const l = JSON.parse(text) as Line;
      lines.push(l);
      if (until(l, lines)) {
        clearTimeout(timer);
        child.kill('SIGKILL');
        resolveKill();
      }
    });
    child.once('exit', () => reject(new Error(`child exited early: ${JSON.stringify(lines.slice(-3))}`)));
  });
  await exited;
  return lines;
}

describe('crash safety', () => {
  it('a writer SIGKILLed mid-write leaves a store that verifies clean, with no partial readable', async () => {
    const dir = await tmp('airlock-crash-');
    const lines = await runAndKill(dir, 'blobs', (l, all) => 'start' in l && all.filter((x) => 'done' in x).length >= 6);
    const inFlight = lines.filter((l) => 'start' in l).at(-1)!.sha256 as string;

    const store = await openStore({ cacheDir: dir, write: true, lockWaitMs: 5000 }); // lock of the dead child is recovered
    const report = await store.rehash();
    expect(report.corrupt).toEqual([]);
    expect(report.checked).toBeGreaterThanOrEqual(6);
    const done = lines.filter((l) => 'done' in l).map((l) => l.sha256 as string);
    for (const d of done) expect(await store.stat(d)).not.toBeNull();
    // whatever the kill left under partial/ is invisible to readers
    const leftovers = (await readdir(join(dir, 'partial'))).map((n) => n.slice(0, 64));
    for (const d of new Set([inFlight, ...leftovers])) {
      if (done.includes(d)) continue;
      expect(await store.stat(d)).toBeNull();
      await expect(store.read(d)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    }
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a download SIGKILLed half way resumes from its partial; the wire carries about the remainder', async () => {
    const dir = await tmp('airlock-resume-');
    const size = 4 * 1024 * 1024;
    await runAndKill(dir, 'resume', (l) => typeof l.bytes === 'number' && l.bytes >= size / 2, { RESUME_SIZE: String(size) });
    const partials = await readdir(join(dir, 'partial'));
    expect(partials.length).toBe(1);
    const kept = (await stat(join(dir, 'partial', partials[0]!))).size;
    expect(kept).toBeGreaterThanOrEqual(size / 2);
    expect(kept).toBeLessThan(size);

    // the same bytes the child was fetching (crash-child.mjs body(999, size))
    const seed = createHash('sha256').update('blob 999').digest();
    const b = Buffer.alloc(size);
    for (let o = 0; o < size; o += seed.length) seed.copy(b, o);
    const ref = { sha256: createHash('sha256').update(b).digest('hex'), size };
    expect(partials[0]).toBe(ref.sha256);

    const store = await openStore({ cacheDir: dir, write: true });
    const f = memoryFetcher({ 'http://up.example/big': b });
    const r = await store.ingestFromUrls(ref, ['http://up.example/big'], f);
    expect(r).toMatchObject({ fetched: true, resumedFrom: kept, transferred: size - kept });
    expect(f.calls).toEqual([{ url: 'http://up.example/big', offset: kept, sent: size - kept }]);
    expect((await store.rehash()).corrupt).toEqual([]);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
});
