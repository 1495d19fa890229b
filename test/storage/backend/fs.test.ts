import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { fsBackend } from '../../../storage/backend/fs.js';
import { blobPath } from '../../../storage/paths.js';
import { backendSuite, ref, sha } from '../backend-suite.js';

backendSuite('fs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'airlock-fs-'));
  return { backend: fsBackend(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
});

describe('fs backend specifics', () => {
  it('committed blobs are read-only at blobs/sha256/ab/…, temp files are gone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'airlock-fs-'));
    const b = fsBackend(dir);
    // the suite's open test runs only where open exists: the fs backend must have it (serving relies on it)
    expect(b.open).toBeTypeOf('function');
    const w = await b.writer(ref('x'));
    await pipeline(Readable.from([Buffer.from('x')]), w.stream);
    await w.commit();
    expect((await stat(blobPath(dir, sha('x')))).mode & 0o777).toBe(0o444);
    expect(await readdir(join(dir, 'partial'))).toEqual([]);
    const bad = await b.writer(ref('y'));
    await pipeline(Readable.from([Buffer.from('z')]), bad.stream);
    await expect(bad.commit()).rejects.toMatchObject({ code: 'EINTEGRITY' });
    expect(await readdir(join(dir, 'partial'))).toEqual([]);
    const q = await b.quarantine(sha('x'));
    expect(q).toContain(join(dir, 'quarantine', sha('x')));
    expect(await b.stat(sha('x'))).toBeNull();
    await rm(dir, { recursive: true, force: true });
  });
});
