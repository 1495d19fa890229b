/**
 * The publisher commands end to end through commander (keygen → root init →
 * manifest sign → manifest verify → root rotate), plus their refusals. Runs
 * the real register functions and actions in-process; files in a fresh temp
 * folder.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Command } from 'commander';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register as registerKeygen, keygen } from '../../../../server/cli/commands/keygen.js';
import { register as registerRoot } from '../../../../server/cli/commands/root.js';
import { register as registerManifest, manifestSign } from '../../../../server/cli/commands/manifest.js';
import { decodeEnvelope, isAirlockError, loadTrustedRoot, sha256Hex, verifyRelease } from '../../../../manifests/index.js';

let dir: string;
let stdout: string[];
let stderr: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-publisher-'));
  stdout = [];
  stderr = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => (stdout.push(String(c)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => (stderr.push(String(c)), true));
});

afterEach(async () => {
  vi.restoreAllMocks();
  process.exitCode = 0;
  await rm(dir, { recursive: true, force: true });
});

/** Runs `airlock ...args` in-process with only the publisher commands; returns the exit status. */
async function airlock(...args: string[]): Promise<number> {
  const program = new Command('airlock').exitOverride();
  registerKeygen(program);
  registerRoot(program);
  registerManifest(program);
  process.exitCode = 0;
  await program.parseAsync(['node', 'airlock', ...args]);
  const code = Number(process.exitCode ?? 0);
  process.exitCode = 0;
  return code;
}

const p = (name: string): string => join(dir, name);
const lastJson = (): Record<string, unknown> => JSON.parse(stdout.filter((l) => l.startsWith('{')).at(-1)!);

const payload = (serial = 1, expires = '2099-01-01T00:00:00Z'): Record<string, unknown> => ({
  type: 'airlock-release',
  spec: 1,
  product: 'stackato',
  release: '3.6.2',
  serial,
  issued: '2026-01-01T00:00:00Z',
  expires,
  artifacts: [
    { path: 'components/router.tgz', kind: 'file', sha256: 'a'.repeat(64), size: 3, urls: ['https://example.com/router.tgz'] },
  ],
});

describe('airlock keygen', () => {
  it('writes NAME.key (0600, PKCS#8) and NAME.pub (SPKI), prints the key id, refuses to overwrite', async () => {
    expect(await airlock('keygen', '--out', p('alice'), '--json')).toBe(0);
    const r = lastJson();
    expect(r.keyid).toMatch(/^[0-9a-f]{64}$/);
    expect((await stat(p('alice.key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(p('alice.key'), 'utf8')).toMatch(/BEGIN PRIVATE KEY/);
    expect(await readFile(p('alice.pub'), 'utf8')).toMatch(/BEGIN PUBLIC KEY/);
    const before = await readFile(p('alice.key'));
    expect(await airlock('keygen', '--out', p('alice'))).toBe(2);
    expect(stderr.join('')).toMatch(/EUSAGE: .*alice\.key already exists/);
    expect((await readFile(p('alice.key'))).equals(before)).toBe(true);
  });
});

describe('publisher flow', () => {
  it('root init → manifest sign → manifest verify → root rotate', async () => {
    const root1 = await keygen(p('root1'));
    await keygen(p('root2'));
    await keygen(p('rel'));
    await keygen(p('rel2'));

    // root init: two root keys, threshold 2
    expect(
      await airlock('root', 'init', '--root-key', p('root1.key'), p('root2.key'), '--root-threshold', '2',
        '--release-key', p('rel.pub'), '--release-threshold', '1', '--expires', '2099-01-01', '--out', p('root.json'), '--json'),
    ).toBe(0);
    const trusted = loadTrustedRoot(await readFile(p('root.json')), new Date());
    expect(trusted.version).toBe(1);
    expect(trusted.payload.roles.root.keyids).toContain(root1.keyid);
    expect(trusted.payload.expires).toBe('2099-01-01T23:59:59Z');

    // manifest sign: pretty-printed input, canonical payload out
    await writeFile(p('m.json'), JSON.stringify(payload(), null, 2));
    expect(await airlock('manifest', 'sign', p('m.json'), '--key', p('rel.key'), '--out', p('m.env.json'), '--json')).toBe(0);
    const signed = lastJson();
    const env = await readFile(p('m.env.json'));
    expect(signed.digest).toBe(sha256Hex(decodeEnvelope(env).payload));
    expect(verifyRelease(env, { root: trusted, now: new Date() }).manifest.serial).toBe(1);

    // manifest verify: human output lists each check
    expect(await airlock('manifest', 'verify', p('m.env.json'), '--trust', p('root.json'))).toBe(0);
    const text = stdout.join('');
    expect(text).toMatch(/ok {2}signatures: 1 distinct release key/);
    expect(text).toMatch(/ok {2}expiry: valid until 2099/);
    expect(text).toMatch(/verified stackato 3\.6\.2 serial 1/);

    // rotate: new release key; old root keys AND new root keys sign
    expect(
      await airlock('root', 'rotate', '--from', p('root.json'), '--sign-key', p('root1.key'), p('root2.key'),
        '--root-key', p('root2.key'), '--release-key', p('rel2.pub'), '--expires', '2099-06-01', '--out', p('root-2.json'), '--json'),
    ).toBe(0);
    expect(lastJson().version).toBe(2);
    // the old manifest's key is no longer a release key under root 2
    expect(await airlock('manifest', 'verify', p('m.env.json'), '--trust', p('root-2.json'), '--json')).toBe(3);
    expect((lastJson().error as { code: string }).code).toBe('ESIGNATURE');
  });

  it('rotate refuses when the old root threshold is not met, and writes nothing', async () => {
    for (const n of ['r1', 'r2', 'rel']) await keygen(p(n));
    expect(
      await airlock('root', 'init', '--root-key', p('r1.key'), p('r2.key'), '--root-threshold', '2',
        '--release-key', p('rel.pub'), '--expires', '2099-01-01', '--out', p('root.json')),
    ).toBe(0);
    expect(
      await airlock('root', 'rotate', '--from', p('root.json'), '--sign-key', p('r1.key'), '--root-key', p('r1.key'),
        '--release-key', p('rel.pub'), '--expires', '2099-01-01', '--out', p('root-2.json'), '--json'),
    ).toBe(3);
    expect((lastJson().error as { code: string }).code).toBe('ESIGNATURE');
    await expect(stat(p('root-2.json'))).rejects.toThrow();
  });

  it('root init refuses a threshold above the keys given, and a past expiry', async () => {
    for (const n of ['r1', 'rel']) await keygen(p(n));
    expect(await airlock('root', 'init', '--root-key', p('r1.key'), '--root-threshold', '2', '--release-key', p('rel.pub'), '--expires', '2099-01-01', '--out', p('root.json'))).toBe(2);
    expect(await airlock('root', 'init', '--root-key', p('r1.key'), '--release-key', p('rel.pub'), '--expires', '2001-01-01', '--out', p('root.json'))).toBe(2);
    expect(stderr.join('')).toMatch(/--expires 2001-01-01 is already past/);
  });
});

describe('airlock manifest', () => {
  beforeEach(async () => {
    for (const n of ['root', 'rel', 'other']) await keygen(p(n));
    expect(await airlock('root', 'init', '--root-key', p('root.key'), '--release-key', p('rel.pub'), '--expires', '2099-01-01', '--out', p('root.json'))).toBe(0);
  });

  it('sign checks the schema before signing and writes nothing for a bad manifest', async () => {
    const bad = payload();
    (bad.artifacts as Array<Record<string, unknown>>)[0]!.path = '../etc/passwd';
    await writeFile(p('bad.json'), JSON.stringify(bad));
    expect(await airlock('manifest', 'sign', p('bad.json'), '--key', p('rel.key'), '--out', p('bad.env'))).toBe(3);
    expect(stderr.join('')).toMatch(/EPATH: artifacts\[0\]: path "\.\.\/etc\/passwd"/);
    await expect(stat(p('bad.env'))).rejects.toThrow();
    await writeFile(p('dup.json'), '{"serial":1,"serial":2}');
    await expect(manifestSign(p('dup.json'), [p('rel.key')], p('dup.env'))).rejects.toSatisfy((e) => isAirlockError(e, 'EMANIFEST'));
  });

  it('verify fails with exit 3 and the code, showing the checks that passed', async () => {
    await writeFile(p('m.json'), JSON.stringify(payload()));
    expect(await airlock('manifest', 'sign', p('m.json'), '--key', p('other.key'), '--out', p('m.env'))).toBe(0);
    expect(await airlock('manifest', 'verify', p('m.env'), '--trust', p('root.json'))).toBe(3);
    expect(stderr.join('')).toMatch(/ok {2}size: .*\n.*ok {2}payload type/);
    expect(stderr.join('')).toMatch(/airlock: ESIGNATURE: /);
  });

  it('verify without --trust is a usage error', async () => {
    await writeFile(p('m.json'), JSON.stringify(payload()));
    await airlock('manifest', 'sign', p('m.json'), '--key', p('rel.key'), '--out', p('m.env'));
    expect(await airlock('manifest', 'verify', p('m.env'))).toBe(2);
  });

  it('an expired manifest fails, and passes with --accept-expired-until (warning names the date)', async () => {
    await writeFile(p('m.json'), JSON.stringify(payload(1, '2026-06-01T00:00:00Z')));
    await airlock('manifest', 'sign', p('m.json'), '--key', p('rel.key'), '--out', p('m.env'));
    expect(await airlock('manifest', 'verify', p('m.env'), '--trust', p('root.json'), '--json')).toBe(3);
    expect((lastJson().error as { code: string }).code).toBe('EEXPIRED');
    expect(await airlock('manifest', 'verify', p('m.env'), '--trust', p('root.json'), '--accept-expired-until', '2099-12-31', '--json')).toBe(0);
    const lines = stdout.join('').trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.event === 'warning')?.message).toMatch(/expired at 2026-06-01T00:00:00Z; accepted until 2099-12-31/);
    expect(lastJson()).toMatchObject({ ok: true, expiredAccepted: true, serial: 1 });
    expect(await airlock('manifest', 'verify', p('m.env'), '--trust', p('root.json'), '--accept-expired-until', '2026-07-01')).toBe(3);
  });
});
