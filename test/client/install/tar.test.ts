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
