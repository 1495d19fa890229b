/**
 * setConfigKeys: several keys in one atomic write (relocate switches
 * `storage:` and `cache_dir` together), comments, other keys and the file's
 * mode kept; a map replaces a whole section; invalid YAML refused in one line.
 */
import { mkdtemp, readFile, readdir, rm, stat, chmod, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { setConfigKey, setConfigKeys } from '../../common/config-write.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-config-write-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('setConfigKeys', () => {
  it('sets a section and a key in one write, keeping comments, other keys and the mode', async () => {
    const file = join(dir, 'airlock.yml');
    await writeFile(file, '# site config\ncache_dir: ./cache  # the disk\nparallel: 4\nstorage: {backend: fs}\n');
    await chmod(file, 0o640);
    await setConfigKeys(file, {
      cache_dir: '/mnt/big',
      storage: { backend: 's3', s3: { endpoint: 'http://127.0.0.1:7480', bucket: 'airlock', prefix: 'site-a', force_path_style: true } },
    });
    const text = await readFile(file, 'utf8');
    expect(text).toContain('# site config');
    expect(parse(text)).toEqual({
      cache_dir: '/mnt/big',
      parallel: 4,
      storage: { backend: 's3', s3: { endpoint: 'http://127.0.0.1:7480', bucket: 'airlock', prefix: 'site-a', force_path_style: true } },
    });
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    // no temp file left beside it
    expect(await readdir(dir)).toEqual(['airlock.yml']);

    // back: the whole section replaced, not merged
    await setConfigKeys(file, { storage: { backend: 'fs' }, redirect_blobs: false });
    expect(parse(await readFile(file, 'utf8'))).toEqual({ cache_dir: '/mnt/big', parallel: 4, storage: { backend: 'fs' }, redirect_blobs: false });
  });

  it('creates a missing file; setConfigKey sets one key', async () => {
    const file = join(dir, 'new.yml');
    await setConfigKey(file, 'cache_dir', '/srv/airlock');
    expect(parse(await readFile(file, 'utf8'))).toEqual({ cache_dir: '/srv/airlock' });
  });

  it('refuses invalid YAML in one line, leaving the file as it was', async () => {
    const file = join(dir, 'bad.yml');
    await writeFile(file, 'cache_dir: [unclosed\n');
    await expect(setConfigKeys(file, { storage: { backend: 'fs' } })).rejects.toMatchObject({
      code: 'EUSAGE',
      message: expect.stringMatching(/^config .*bad\.yml: invalid YAML, cannot set "storage": [^\n]*$/),
    });
    expect(await readFile(file, 'utf8')).toBe('cache_dir: [unclosed\n');
  });
});
