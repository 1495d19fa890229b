/** What every installer shares: paths placed under --root, verified work copies of staged blobs, backup names. */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { backupSuffix, materialize, underRoot } from '../../../client/install/context.js';
import { isAirlockError } from '../../../manifests/errors.js';
import { context, failure, sandbox, sha256 } from './hostile.js';

describe('underRoot', () => {
  it.each([
    ['/s/code/router', '/r/s/code/router'],
    ['/opt/app/', '/r/opt/app'],
    ['//etc/x', '/r/etc/x'],
    ['/', '/r'],
  ])('%s → %s', (path, want) => {
    expect(underRoot('/r', path, 'components/x.tgz')).toBe(want);
  });

  it.each(['relative/path', '/opt/../../etc', '/opt/./x', '/etc//x', ''])('refuses %j with EPATH naming the artifact', (path) => {
    let err: unknown;
    try {
      underRoot('/r', path, 'components/x.tgz');
    } catch (e) {
      err = e;
    }
    expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/^components\/x\.tgz: install path/);
  });
});

describe('materialize', () => {
  it('copies a staged blob into STATE/work under the given name, mode 0600', async () => {
    const { root, state } = sandbox('ctx');
    const body = Buffer.from('a deb, more or less');
    const ctx = context(root, state, [body]);
    const file = await materialize(ctx, sha256(body), body.length, 'hello_1.0_all.deb');
    expect(file).toBe(join(state, 'work', 'hello_1.0_all.deb'));
    expect(readFileSync(file)).toEqual(body);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('bytes that changed in staging (digest or size) are EINTEGRITY, and no work copy is left', async () => {
    const { root, state } = sandbox('ctx');
    const body = Buffer.from('the signed bytes');
    const ctx = context(root, state);
    ctx.source = { read: async () => Readable.from([Buffer.from('other bytes!!!!!')]) };
    const err = await failure(materialize(ctx, sha256(body), body.length, 'x.gem'));
    expect(isAirlockError(err, 'EINTEGRITY'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/^x\.gem: staged copy changed \(expected sha256 [0-9a-f]{64}, 16 bytes; found [0-9a-f]{64}, 16 bytes\)$/);
    expect(readdirSync(join(state, 'work'))).toEqual([]);

    ctx.source = { read: async () => Readable.from([body, Buffer.from('+')]) };
    expect(isAirlockError(await failure(materialize(ctx, sha256(body), body.length, 'x.gem')), 'EINTEGRITY')).toBe(true);
    expect(existsSync(join(state, 'work', 'x.gem'))).toBe(false);
  });
});

describe('backupSuffix', () => {
  it('names the run by its one clock reading, to the second, without separators', () => {
    expect(backupSuffix(new Date('2026-01-02T03:04:05.678Z'))).toBe('.airlock-bak-20260102T030405Z');
  });
});
