import { lstatSync } from 'node:fs';
import { readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic, writeFileAtomicSync } from '../../common/atomic.js';
import { tmp } from '../storage/fixtures.js';

let dir: string;
beforeEach(async () => {
  dir = await tmp('airlock-atomic-');
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const variants = [
  ['writeFileAtomic', writeFileAtomic],
  ['writeFileAtomicSync', async (...a: Parameters<typeof writeFileAtomicSync>) => writeFileAtomicSync(...a)],
] as const;

describe.each(variants)('%s', (_name, write) => {
  it('makes missing folders, writes the bytes and leaves no temp file', async () => {
    const target = join(dir, 'a', 'b', 'f.json');
    await write(target, '{"x":1}\n');
    expect(await readFile(target, 'utf8')).toBe('{"x":1}\n');
    expect(await readdir(join(dir, 'a', 'b'))).toEqual(['f.json']);
  });

  it('replaces an existing file whole, with the mode asked for', async () => {
    const target = join(dir, 'f');
    await writeFile(target, 'old and longer');
    await write(target, Buffer.from('new'), { mode: 0o600 });
    expect(await readFile(target, 'utf8')).toBe('new');
    expect((await stat(target)).mode & 0o777).toBe(0o600);
  });

  it('replaces a link at the name instead of writing through it', async () => {
    await writeFile(join(dir, 'elsewhere'), 'theirs');
    await symlink(join(dir, 'elsewhere'), join(dir, 'f'));
    await write(join(dir, 'f'), 'ours');
    expect(lstatSync(join(dir, 'f')).isFile()).toBe(true);
    expect(await readFile(join(dir, 'elsewhere'), 'utf8')).toBe('theirs');
  });
});

describe('writeFileAtomic exclusive', () => {
  it('refuses to replace an existing file with EEXIST and leaves it and no temp file', async () => {
    const target = join(dir, 'k.key');
    await writeFileAtomic(target, 'first', { exclusive: true });
    const err = await writeFileAtomic(target, 'second', { exclusive: true }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EEXIST' });
    expect(await readFile(target, 'utf8')).toBe('first');
    expect(await readdir(dir)).toEqual(['k.key']);
  });
});
