/** `airlock status` and `airlock verify`, run in-process through the real command tree. */
import { chmod, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../../../server/cli/program.js';
import { openStore } from '../../../../storage/index.js';
import { blobPath } from '../../../../storage/paths.js';
import { fileArtifact, makeRelease, sha, tmp } from '../../../storage/fixtures.js';

let dir: string;
const A = 'alpha';
const B = 'bravo!';

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => ((stdout += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => ((stderr += String(c)), true));
  process.exitCode = 0;
  try {
    await buildProgram().exitOverride().parseAsync(['node', 'airlock', ...args, '--cache-dir', dir]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return { code, stdout, stderr };
}

beforeEach(async () => {
  dir = await tmp('airlock-cli-');
  const store = await openStore({ cacheDir: dir, write: true });
  await store.putRelease(makeRelease('3.6.2', [fileArtifact('a.txt', A), fileArtifact('debs/b.deb', B)], 3));
  await store.ingestStream({ sha256: sha(A), size: A.length }, Readable.from([Buffer.from(A)]));
  await store.close();
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('airlock status', () => {
  it('says exactly what is missing and exits 1; exits 0 once ready', async () => {
    let r = await run('status', '3.6.2');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('NOT READY  1/2 files');
    expect(r.stdout).toContain(`missing debs/b.deb  sha256:${sha(B)}  6 bytes`);
    r = await run('status', '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, releases: [{ release: '3.6.2', ready: false, missingBlobs: 1 }] });
    const store = await openStore({ cacheDir: dir, write: true });
    await store.ingestStream({ sha256: sha(B), size: B.length }, Readable.from([Buffer.from(B)]));
    await store.close();
    r = await run('status', '3.6.2', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, status: { ready: true } });
  });

  it('an unknown release is ENOTFOUND naming the known ones', async () => {
    const r = await run('status', '9.9');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('airlock: ENOTFOUND: release "9.9" is not in the cache');
    expect(r.stderr).toContain('known: 3.6.2');
  });
});

describe('airlock verify', () => {
  it('exit 0 when intact; exit 3 and a quarantine report when a blob was corrupted', async () => {
    let r = await run('verify');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('checked 1 blob(s): 1 ok, 0 corrupt, 1 missing');
    const f = blobPath(dir, sha(A));
    await chmod(f, 0o644);
    await writeFile(f, 'alphb');
    r = await run('verify', '3.6.2', '--rebuild-index');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('index rebuilt: 1 release(s), 1 blob(s)');
    expect(r.stdout).toContain(`CORRUPT sha256:${sha(A)}: expected 5 bytes, found 5 bytes with sha256:${sha('alphb')}`);
    r = await run('status', '3.6.2');
    expect(r.stdout).toContain(`missing a.txt  sha256:${sha(A)}`);
  });
});
