import { describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { installFile } from '../../../client/install/file.js';
import { isAirlockError } from '../../../manifests/errors.js';
import type { FileArtifact } from '../../../manifests/types.js';
import { context, failure, makeTar, sandbox } from './hostile.js';

function copyArtifact(ctx: ReturnType<typeof context>, body: string, copy: string): FileArtifact {
  const b = Buffer.from(body);
  return { kind: 'file', path: 'files/app.conf', urls: [], sha256: ctx.add(b), size: b.length, install: { copy, mode: '0640' } };
}

describe('installFile: copy', () => {
  it('copies with the mode asked for', async () => {
    const { root, state } = sandbox('file');
    const ctx = context(root, state);
    await installFile(ctx, copyArtifact(ctx, 'conf', '/etc/app/app.conf'));
    expect(readFileSync(join(root, 'etc', 'app', 'app.conf'), 'utf8')).toBe('conf');
    expect(lstatSync(join(root, 'etc', 'app', 'app.conf')).mode & 0o777).toBe(0o640);
  });

  it('refuses with EPATH when a folder on the way is a link leading out (ROOT/etc -> ../escaped)', async () => {
    const { root, state, outside } = sandbox('file');
    symlinkSync('../escaped', join(root, 'etc'));
    const ctx = context(root, state);
    const err = await failure(installFile(ctx, copyArtifact(ctx, 'conf', '/etc/app/app.conf')));
    expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
    expect((err as Error).message).not.toMatch(/\n/);
    expect(outside()).toEqual([]);
  });

  it('never writes through a link planted at its temp name', async () => {
    const { root, state, escaped, outside } = sandbox('file');
    const ctx = context(root, state);
    const a = copyArtifact(ctx, 'conf', '/etc/app.conf');
    mkdirSync(join(root, 'etc'));
    // the temp name a copy used to take: fixed by pid and digest
    symlinkSync(join(escaped, 'owned'), join(root, 'etc', `.airlock-tmp-${process.pid}-${a.sha256.slice(0, 12)}`));
    await installFile(ctx, a).catch((e: unknown) => expect(isAirlockError(e, 'EPATH')).toBe(true));
    expect(outside()).toEqual([]);
  });

  it('replaces a link at the destination instead of writing where it points', async () => {
    const { root, state, escaped, outside } = sandbox('file');
    mkdirSync(join(root, 'etc'));
    symlinkSync(join(escaped, 'app.conf'), join(root, 'etc', 'app.conf'));
    const ctx = context(root, state);
    await installFile(ctx, copyArtifact(ctx, 'conf', '/etc/app.conf'));
    expect(readFileSync(join(root, 'etc', 'app.conf'), 'utf8')).toBe('conf');
    expect(lstatSync(join(root, 'etc', 'app.conf')).isFile()).toBe(true);
    expect(outside()).toEqual([]);
  });

  it('refuses with EPATH (one line) when the destination is a folder', async () => {
    const { root, state } = sandbox('file');
    mkdirSync(join(root, 'etc', 'app.conf'), { recursive: true });
    const ctx = context(root, state);
    const err = await failure(installFile(ctx, copyArtifact(ctx, 'conf', '/etc/app.conf')));
    expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
  });
});

describe('installFile: extract', () => {
  it('refuses the `a -> .`, `a/var -> ../escaped` tarball extracted at / with EPATH, leaving the root as it was', async () => {
    const { root, state, outside } = sandbox('file');
    const ctx = context(root, state);
    const tar = await makeTar([
      { name: 'a', type: 'symlink', linkname: '.' },
      { name: 'a/var', type: 'symlink', linkname: '../escaped' },
    ]);
    const a: FileArtifact = { kind: 'file', path: 'components/evil.tar', urls: [], sha256: ctx.add(tar), size: tar.length, install: { extract: '/' } };
    const err = await failure(installFile(ctx, a));
    expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
    expect((err as Error).message).not.toMatch(/\n/);
    expect(readdirSync(root)).toEqual([]);
    expect(outside()).toEqual([]);
  });

  it('extracts links that stay inside the root', async () => {
    const { root, state } = sandbox('file');
    const ctx = context(root, state);
    const tar = await makeTar([{ name: 'bin/run', body: '#!/bin/sh\n', mode: 0o755 }, { name: 'run', type: 'symlink', linkname: 'bin/run' }]);
    const a: FileArtifact = { kind: 'file', path: 'components/app.tar', urls: [], sha256: ctx.add(tar), size: tar.length, install: { extract: '/opt/app' } };
    await installFile(ctx, a);
    expect(readlinkSync(join(root, 'opt', 'app', 'run'))).toBe('bin/run');
  });
});
