/**
 * `airlock-node apt-source` against a real cache app on 127.0.0.1: the key
 * and the sources entry written under --root through the fence, the key
 * pinned by --fingerprint (a mismatch writes nothing), a link out of the
 * root refused, and gpgv accepting the cache's InRelease with the keyring
 * as written.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aptSourceEntry, normalizeFingerprint, writeAptSource } from '../../client/apt-source.js';
import { createServer } from '../../server/http/index.js';
import { makeFixture, type Fixture } from '../server/http/fixture.js';
import { NODE_CLI, runCli, runCmd } from '../support/cli.js';

let fx: Fixture;
let server: http.Server;
let base: string;
let fingerprint: string;

beforeAll(async () => {
  fx = await makeFixture();
  const app = createServer({ adminToken: null, passthrough: false }, { store: fx.store });
  server = http.createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  fingerprint = (await fetch(`${base}/apt/airlock.gpg`)).headers.get('x-airlock-key-fingerprint')!;
  expect(fingerprint).toMatch(/^[0-9A-F]{40}$/);
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await fx?.store.close();
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

const freshRoot = (): string => mkdtempSync(join(tmpdir(), 'airlock-apt-root-'));

describe('writeAptSource', () => {
  it('writes the keyring and a one-line source under --root; gpgv accepts the cache\'s InRelease with that keyring', async () => {
    const root = freshRoot();
    const r = await writeAptSource({ cache: `${base}/`, product: 'stackato', suite: 'current', root, fingerprint: null, format: 'list' });
    expect(r).toMatchObject({ fingerprint, pinned: false });
    expect(readFileSync(join(root, 'etc/apt/sources.list.d/airlock.list'), 'utf8')).toBe(
      `deb [signed-by=/etc/apt/keyrings/airlock.gpg] ${base}/apt/stackato current main\n`,
    );
    const keyring = join(root, 'etc/apt/keyrings/airlock.gpg');
    expect(statSync(keyring).mode & 0o777).toBe(0o644);
    expect(readFileSync(keyring).equals(Buffer.from(await (await fetch(`${base}/apt/airlock.gpg`)).arrayBuffer()))).toBe(true);
    const inRelease = join(root, 'InRelease');
    writeFileSync(inRelease, Buffer.from(await (await fetch(`${base}/apt/stackato/dists/current/InRelease`)).arrayBuffer()));
    const v = await runCmd('gpgv', ['--keyring', keyring, inRelease]);
    expect(v.code).toBe(0);
    expect(v.stderr).toMatch(/Good signature/);
    await rm(root, { recursive: true, force: true });
  });

  it('deb822 and a pinned fingerprint (spaces, lower case, 0x allowed)', async () => {
    const root = freshRoot();
    const spaced = `0x${fingerprint.toLowerCase().replace(/(.{4})/g, '$1 ')}`;
    const r = await writeAptSource({ cache: base, product: 'stackato', suite: '3.6.2', root, fingerprint: spaced, format: 'deb822' });
    expect(r.pinned).toBe(true);
    expect(readFileSync(join(root, 'etc/apt/sources.list.d/airlock.sources'), 'utf8')).toBe(
      `Types: deb\nURIs: ${base}/apt/stackato\nSuites: 3.6.2\nComponents: main\nSigned-By: /etc/apt/keyrings/airlock.gpg\n`,
    );
    await rm(root, { recursive: true, force: true });
  });

  it('another fingerprint: ESIGNATURE and nothing written', async () => {
    const root = freshRoot();
    const other = fingerprint.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    await expect(writeAptSource({ cache: base, product: 'stackato', suite: 'current', root, fingerprint: other, format: 'list' })).rejects.toMatchObject({
      code: 'ESIGNATURE',
      message: expect.stringContaining(`not the pinned ${other}`),
    });
    expect(existsSync(join(root, 'etc'))).toBe(false);
    await rm(root, { recursive: true, force: true });
  });

  it('a link out of the root: EPATH, nothing written outside', async () => {
    const root = freshRoot();
    const outside = freshRoot();
    mkdirSync(join(root, 'etc/apt'), { recursive: true });
    symlinkSync(outside, join(root, 'etc/apt/keyrings'));
    await expect(writeAptSource({ cache: base, product: 'stackato', suite: 'current', root, fingerprint: null, format: 'list' })).rejects.toMatchObject({ code: 'EPATH' });
    expect(existsSync(join(outside, 'airlock.gpg'))).toBe(false);
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('bad input is EUSAGE; a cache without the key is ENOTFOUND', async () => {
    const root = freshRoot();
    const go = (o: Partial<Parameters<typeof writeAptSource>[0]>) =>
      writeAptSource({ cache: base, product: 'stackato', suite: 'current', root, fingerprint: null, format: 'list', ...o });
    await expect(go({ fingerprint: 'ABCD' })).rejects.toMatchObject({ code: 'EUSAGE' });
    await expect(go({ suite: 'a b' })).rejects.toMatchObject({ code: 'EUSAGE' });
    await expect(go({ cache: 'ftp://x' })).rejects.toMatchObject({ code: 'EUSAGE' });
    await expect(go({ root: join(root, 'missing') })).rejects.toMatchObject({ code: 'EUSAGE' });
    await expect(go({ cache: `${base}/nothing-here` })).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await rm(root, { recursive: true, force: true });
  });

  it('entries and fingerprints as written', () => {
    expect(aptSourceEntry({ cache: 'http://cache:7070', product: 'p', suite: 'current', format: 'list' })).toBe(
      'deb [signed-by=/etc/apt/keyrings/airlock.gpg] http://cache:7070/apt/p current main\n',
    );
    expect(normalizeFingerprint('0xabcd abcd abcd abcd abcd  abcd abcd abcd abcd abcd')).toBe('ABCD'.repeat(10));
  });
});

describe('airlock-node apt-source', () => {
  it('warns that an unpinned key came from the cache; a wrong pin exits 3 with one line', async () => {
    const root = freshRoot();
    const r = await runCli(NODE_CLI, ['apt-source', '--cache', base, '--product', 'stackato', '--root', root]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`warning: the key came from the cache unchecked: compare its fingerprint ${fingerprint}`));
    expect(r.stdout).toContain(`deb [signed-by=/etc/apt/keyrings/airlock.gpg] ${base}/apt/stackato current main`);
    const bad = await runCli(NODE_CLI, ['apt-source', '--cache', base, '--product', 'stackato', '--root', root, '--fingerprint', '0'.repeat(40)]);
    expect(bad.code).toBe(3);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/ESIGNATURE/);
    await rm(root, { recursive: true, force: true });
  });
});
