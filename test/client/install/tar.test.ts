import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { extractTar } from '../../../client/install/tar.js';
import { isAirlockError } from '../../../manifests/errors.js';
import { failure, sandbox } from './hostile.js';

type E = { name: string; type?: 'file' | 'symlink' | 'link' | 'directory' | 'character-device'; body?: string; linkname?: string };

async function makeTar(entries: E[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.type === 'file' || e.type === undefined) p.entry({ name: e.name, mode: 0o644 }, e.body ?? '');
    else p.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o755 });
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p as unknown as AsyncIterable<Buffer>) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

const opener = (bytes: Buffer) => async () => Readable.from([bytes]);

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-tar-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  return { dir, root, target: join(root, 's', 'code', 'app') };
}

const opts = (root: string, target: string, previous: Record<string, string> = {}) => ({
  target,
  fence: root,
  where: 'components/app.tgz',
  previous,
  backupSuffix: '.airlock-bak-T',
});

describe('extractTar', () => {
  it('extracts a real tar.gz made by tar, with folders, modes, inside symlinks', async () => {
    const { dir, root, target } = setup();
    const src = join(dir, 'src');
    mkdirSync(join(src, 'bin'), { recursive: true });
    writeFileSync(join(src, 'bin', 'run'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    writeFileSync(join(src, 'README'), 'readme');
    symlinkSync('bin/run', join(src, 'run'));
    execFileSync('tar', ['-czf', join(dir, 'a.tgz'), '-C', src, '.']);
    const r = await extractTar(opener(readFileSync(join(dir, 'a.tgz'))), opts(root, target));
    expect(readFileSync(join(target, 'README'), 'utf8')).toBe('readme');
    expect(lstatSync(join(target, 'bin', 'run')).mode & 0o777).toBe(0o755);
    expect(readlinkSync(join(target, 'run'))).toBe('bin/run');
    expect(Object.keys(r.written).sort()).toEqual(['README', 'bin/run']);
  });

  for (const [label, bad] of [
    ['a ../ entry', { name: '../../escape.txt', body: 'x' }],
    ['an absolute path', { name: '/tmp/airlock-abs-escape.txt', body: 'x' }],
    ['a symlink pointing out', { name: 'link', type: 'symlink', linkname: '../../../outside' }],
    ['an absolute symlink', { name: 'link', type: 'symlink', linkname: '/etc' }],
    ['a device', { name: 'dev', type: 'character-device' }],
    ['a hard link to outside', { name: 'hl', type: 'link', linkname: '../x' }],
  ] as Array<[string, E]>) {
    it(`refuses ${label} with EPATH and writes nothing`, async () => {
      const { dir, root, target } = setup();
      const tar = await makeTar([{ name: 'ok.txt', body: 'fine' }, bad, { name: 'after.txt', body: 'x' }]);
      const err = await extractTar(opener(gzipSync(tar)), opts(root, target)).catch((e: unknown) => e);
      expect(isAirlockError(err, 'EPATH')).toBe(true);
      expect(existsSync(target)).toBe(false);
      expect(readdirSync(dir).sort()).toEqual(['root']);
      expect(readdirSync(root)).toEqual([]);
    });
  }

  it('refuses to write through a symlink on disk that points out of the root', async () => {
    const { dir, root, target } = setup();
    mkdirSync(join(dir, 'outside'));
    mkdirSync(join(root, 's'));
    symlinkSync(join(dir, 'outside'), join(root, 's', 'code'));
    const tar = await makeTar([{ name: 'ok.txt', body: 'fine' }]);
    const err = await extractTar(opener(tar), opts(root, target)).catch((e: unknown) => e);
    expect(isAirlockError(err, 'EPATH')).toBe(true);
    expect(readdirSync(join(dir, 'outside'))).toEqual([]);
  });

  it('backs up a file the operator changed since the last install, not one it left alone', async () => {
    const { root, target } = setup();
    const first = await extractTar(opener(await makeTar([{ name: 'a.conf', body: 'v1' }, { name: 'b.conf', body: 'v1' }])), opts(root, target));
    writeFileSync(join(target, 'a.conf'), 'operator edit');
    const second = await extractTar(
      opener(await makeTar([{ name: 'a.conf', body: 'v2' }, { name: 'b.conf', body: 'v2' }])),
      opts(root, target, first.written),
    );
    expect(second.backups).toEqual([join(target, 'a.conf.airlock-bak-T')]);
    expect(readFileSync(join(target, 'a.conf.airlock-bak-T'), 'utf8')).toBe('operator edit');
    expect(readFileSync(join(target, 'a.conf'), 'utf8')).toBe('v2');
    expect(readFileSync(join(target, 'b.conf'), 'utf8')).toBe('v2');
  });

  it('refuses garbage as EINTEGRITY', async () => {
    const { root, target } = setup();
    const err = await extractTar(opener(gzipSync(Buffer.from('not a tar at all'.repeat(100)))), opts(root, target)).catch((e: unknown) => e);
    expect(isAirlockError(err)).toBe(true);
  });
});

describe('extractTar: links are checked where they really land', () => {
  it('refuses `a -> .` then `a/var -> ../escaped` into the root itself, and leaves nothing behind', async () => {
    const { root, escaped, outside } = sandbox('tar');
    const tar = await makeTar([
      { name: 'a', type: 'symlink', linkname: '.' },
      { name: 'a/var', type: 'symlink', linkname: '../escaped' },
    ]);
    const err = await failure(extractTar(opener(tar), opts(root, root)));
    expect(isAirlockError(err, 'EPATH')).toBe(true);
    expect((err as Error).message).toMatch(/a\/var/);
    expect((err as Error).message).not.toMatch(/\n/);
    expect(readdirSync(root)).toEqual([]);
    expect(outside()).toEqual([]);
    expect(existsSync(join(escaped, '..', 'root', 'var'))).toBe(false);
  });

  it('refuses the same pair under a target folder (the link lands beside `a`, not inside it)', async () => {
    const { root, outside } = sandbox('tar');
    const target = join(root, 'opt', 'app');
    const tar = await makeTar([
      { name: 'a', type: 'symlink', linkname: '.' },
      { name: 'a/up', type: 'symlink', linkname: '..' },
    ]);
    const err = await failure(extractTar(opener(tar), opts(root, target)));
    expect(isAirlockError(err, 'EPATH')).toBe(true);
    expect(readdirSync(root)).toEqual([]);
    expect(outside()).toEqual([]);
  });

  it('refuses an archive refused at a later entry without leaving the links of earlier ones', async () => {
    const { root, outside } = sandbox('tar');
    const target = join(root, 'opt', 'app');
    const tar = await makeTar([
      { name: 'ok.txt', body: 'fine' },
      { name: 'a', type: 'symlink', linkname: '.' },
      { name: 'a/b', type: 'symlink', linkname: '..' },
      { name: 'a/b/c/file.txt', body: 'where?' },
    ]);
    const err = await failure(extractTar(opener(tar), opts(root, target)));
    expect(isAirlockError(err, 'EPATH')).toBe(true);
    expect(readdirSync(root)).toEqual([]);
    expect(outside()).toEqual([]);
  });

  it('refuses a link that only leads out once a later entry makes its first folder a link', async () => {
    const { root, outside } = sandbox('tar');
    const target = join(root, 'opt', 'app');
    // lexically "x/../y/.." is the target itself; once x -> . it is the target's parent
    const tar = await makeTar([
      { name: 'b', type: 'symlink', linkname: 'x/../y/..' },
      { name: 'x', type: 'symlink', linkname: '.' },
    ]);
    const err = await failure(extractTar(opener(tar), opts(root, target)));
    expect(isAirlockError(err, 'EPATH')).toBe(true);
    expect(readdirSync(root)).toEqual([]);
    expect(outside()).toEqual([]);
  });

  it('refuses to write through a link already in the target that leads out of it', async () => {
    const { root, escaped, outside } = sandbox('tar');
    const target = join(root, 'opt', 'app');
    mkdirSync(target, { recursive: true });
    symlinkSync(escaped, join(target, 'logs'));
    const err = await failure(extractTar(opener(await makeTar([{ name: 'first.txt', body: '1' }, { name: 'logs/x.log', body: 'x' }])), opts(root, target)));
    expect(isAirlockError(err, 'EPATH')).toBe(true);
    expect(outside()).toEqual([]);
    expect(readdirSync(target)).toEqual(['logs']);
  });

  it('follows links that stay inside: `a -> .` then `a/f` lands at f, and a hard link through `a`', async () => {
    const { root } = sandbox('tar');
    const target = join(root, 'opt', 'app');
    const tar = await makeTar([
      { name: 'a', type: 'symlink', linkname: '.' },
      { name: 'a/f', body: 'content' },
      { name: 'g', type: 'link', linkname: 'a/f' },
      { name: 'sub/up', type: 'symlink', linkname: '..' },
    ]);
    const r = await extractTar(opener(tar), opts(root, target));
    expect(readFileSync(join(target, 'f'), 'utf8')).toBe('content');
    expect(readFileSync(join(target, 'g'), 'utf8')).toBe('content');
    expect(readlinkSync(join(target, 'sub', 'up'))).toBe('..');
    expect(Object.keys(r.written).sort()).toEqual(['f', 'g']);
  });

  it('refuses a file entry where the archive made a folder, before writing anything', async () => {
    const { root } = sandbox('tar');
    const target = join(root, 'opt', 'app');
    const tar = await makeTar([{ name: 'first.txt', body: '1' }, { name: 'd/x', body: 'x' }, { name: 'd', body: 'now a file' }]);
    const err = await failure(extractTar(opener(tar), opts(root, target)));
    expect(isAirlockError(err, 'EPATH')).toBe(true);
    expect(readdirSync(root)).toEqual([]);
  });
});

describe('extractTar: a truncated archive', () => {
  it('is EINTEGRITY naming the entry, in one line, at any cut, plain or gzipped, and writes nothing', async () => {
    const whole = await makeTar([
      { name: 'one.txt', body: 'x'.repeat(3000) },
      { name: 'big.bin', body: 'y'.repeat(100_000) },
    ]);
    const gz = gzipSync(whole);
    const cuts: Array<[string, Buffer]> = [];
    for (const n of [0, 100, 512, 1000, 4096, 5000, 50_000, whole.length - 1024, whole.length - 512]) cuts.push([`tar cut at ${n}`, whole.subarray(0, n)]);
    for (const n of [30, Math.floor(gz.length / 2), gz.length - 8]) cuts.push([`tar.gz cut at ${n}`, gz.subarray(0, n)]);
    for (const [label, bytes] of cuts) {
      const { root } = sandbox('trunc');
      const target = join(root, 'opt', 'app');
      const err = await failure(extractTar(opener(bytes), opts(root, target)));
      expect(isAirlockError(err, 'EINTEGRITY'), `${label}: ${String(err)}`).toBe(true);
      const message = (err as Error).message;
      expect(message, label).toMatch(/^components\/app\.tgz: /);
      expect(message, label).toMatch(/entry "(one\.txt|big\.bin)"|before its first entry|is empty/);
      expect(message, label).not.toMatch(/\n/);
      expect(readdirSync(root), label).toEqual([]);
    }
  });
});

describe('extractTar: a write pass that fails takes everything back', () => {
  it('removes what it made and restores what it replaced when the blob changes between the passes', async () => {
    const { root } = sandbox('undo');
    const target = join(root, 'opt', 'app');
    mkdirSync(target, { recursive: true });
    writeFileSync(join(target, 'keep.txt'), 'old');
    const checked = await makeTar([{ name: 'keep.txt', body: 'new' }, { name: 'sub/new.txt', body: 'n' }, { name: 'l', type: 'symlink', linkname: 'keep.txt' }, { name: 'last', body: 'A' }]);
    const changed = await makeTar([{ name: 'keep.txt', body: 'new' }, { name: 'sub/new.txt', body: 'n' }, { name: 'l', type: 'symlink', linkname: 'keep.txt' }, { name: 'last', body: 'B' }]);
    let opens = 0;
    // pass 1 opens twice (gzip probe + read), pass 2 gets other bytes
    const err = await failure(extractTar(async () => Readable.from([opens++ < 2 ? checked : changed]), opts(root, target)));
    expect(isAirlockError(err, 'EINTEGRITY'), String(err)).toBe(true);
    expect(readdirSync(target)).toEqual(['keep.txt']);
    expect(readFileSync(join(target, 'keep.txt'), 'utf8')).toBe('old');
  });
});
