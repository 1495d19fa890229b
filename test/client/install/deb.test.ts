import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installDebs } from '../../../client/install/deb.js';
import { isAirlockError } from '../../../manifests/errors.js';
import type { DebArtifact } from '../../../manifests/types.js';
import { context, failure, sandbox } from './hostile.js';

// a real package built with dpkg-deb: /usr/bin/airlock-hello and /etc/airlock-hello.conf
let deb: Buffer;
beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-debsrc-'));
  const pkg = join(dir, 'pkg');
  mkdirSync(join(pkg, 'DEBIAN'), { recursive: true });
  mkdirSync(join(pkg, 'usr', 'bin'), { recursive: true });
  mkdirSync(join(pkg, 'etc'), { recursive: true });
  writeFileSync(join(pkg, 'DEBIAN', 'control'), 'Package: airlock-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n');
  writeFileSync(join(pkg, 'usr', 'bin', 'airlock-hello'), '#!/bin/sh\necho hello\n');
  chmodSync(join(pkg, 'usr', 'bin', 'airlock-hello'), 0o755);
  writeFileSync(join(pkg, 'etc', 'airlock-hello.conf'), 'x=1\n');
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', pkg, join(dir, 'p.deb')], { stdio: 'ignore' });
  deb = readFileSync(join(dir, 'p.deb'));
});

const artifact = (ctx: ReturnType<typeof context>): DebArtifact => ({
  kind: 'deb',
  path: 'debs/airlock-hello_1.0_all.deb',
  urls: [],
  sha256: ctx.add(deb),
  size: deb.length,
  package: 'airlock-hello',
  version: '1.0',
  arch: 'all',
});

describe('installDebs into --root', () => {
  it('installs a real deb with dpkg, its database and log under the root', async () => {
    const { root, state, outside } = sandbox('deb');
    const ctx = context(root, state);
    await installDebs(ctx, [artifact(ctx)]);
    expect(readFileSync(join(root, 'usr', 'bin', 'airlock-hello'), 'utf8')).toMatch(/hello/);
    expect(readFileSync(join(root, 'var', 'lib', 'dpkg', 'status'), 'utf8')).toMatch(/Package: airlock-hello/);
    expect(readFileSync(join(root, 'var', 'log', 'dpkg.log'), 'utf8')).toMatch(/airlock-hello/);
    expect(outside()).toEqual([]);
  });

  for (const [label, plant] of [
    ['the admin dir is a link out (ROOT/var/lib/dpkg -> ../../../escaped)', (root: string) => {
      mkdirSync(join(root, 'var', 'lib'), { recursive: true });
      symlinkSync('../../../escaped', join(root, 'var', 'lib', 'dpkg'));
    }],
    ['ROOT/var -> ../escaped', (root: string) => symlinkSync('../escaped', join(root, 'var'))],
    ['the status file is a link out', (root: string) => {
      mkdirSync(join(root, 'var', 'lib', 'dpkg'), { recursive: true });
      symlinkSync(join(root, '..', 'escaped', 'status'), join(root, 'var', 'lib', 'dpkg', 'status'));
    }],
    ['the log is an absolute link out', (root: string) => {
      mkdirSync(join(root, 'var', 'log'), { recursive: true });
      symlinkSync(join(root, '..', 'escaped', 'dpkg.log'), join(root, 'var', 'log', 'dpkg.log'));
    }],
    ['a folder the package installs into is a link out (ROOT/usr -> ../escaped)', (root: string) => symlinkSync('../escaped', join(root, 'usr'))],
  ] as Array<[string, (root: string) => void]>) {
    it(`refuses with EPATH when ${label}, writing nothing outside`, async () => {
      const { root, state, outside } = sandbox('deb');
      plant(root);
      const ctx = context(root, state);
      const err = await failure(installDebs(ctx, [artifact(ctx)]));
      expect(outside()).toEqual([]);
      expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
      expect((err as Error).message).not.toMatch(/\n/);
    });
  }
});
