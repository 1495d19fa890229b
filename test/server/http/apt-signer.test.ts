/**
 * The cache's apt signing key: made once (0600) even when several processes
 * start at once, a key exported by the real gpg accepted as apt_signing_key,
 * a protected or missing key refused in one line, and every signature
 * checked by the real gpgv.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAptSigner, type AptSigner } from '../../../server/http/apt-signer.js';

const dir = mkdtempSync(join(tmpdir(), 'airlock-apt-signer-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, encoding: 'buffer', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr: stderr.toString() });
    });
  });
}

/** gpgv on a clearsigned text and on a detached signature, with the signer's binary public key as the keyring. */
async function gpgvAccepts(signer: AptSigner, text: string, name: string): Promise<void> {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'key.gpg'), signer.publicBinary);
  writeFileSync(join(d, 'InRelease'), await signer.clearsign(text));
  writeFileSync(join(d, 'Release'), text);
  writeFileSync(join(d, 'Release.gpg'), await signer.detach(Buffer.from(text)));
  const a = await run('gpgv', ['--keyring', join(d, 'key.gpg'), join(d, 'InRelease')]);
  expect(a.stderr).toMatch(/Good signature/);
  expect(a.code).toBe(0);
  const b = await run('gpgv', ['--keyring', join(d, 'key.gpg'), join(d, 'Release.gpg'), join(d, 'Release')]);
  expect(b.stderr).toMatch(/Good signature/);
  expect(b.code).toBe(0);
  // one changed byte of the text: BAD signature
  writeFileSync(join(d, 'Release'), text.replace('Suite: current', 'Suite: currenu'));
  expect((await run('gpgv', ['--keyring', join(d, 'key.gpg'), join(d, 'Release.gpg'), join(d, 'Release')])).code).not.toBe(0);
}

const RELEASE = 'Origin: airlock\nSuite: current\nSHA256:\n 0123 12 main/binary-amd64/Packages\n';

describe('the key made on first use', () => {
  it('is written once, 0600, even when four loaders race; they all get the same key; gpgv accepts its signatures', async () => {
    const path = join(dir, 'cache', 'apt-signing-key.asc');
    const signers = await Promise.all([1, 2, 3, 4].map(() => loadAptSigner(path, { create: true })));
    expect(new Set(signers.map((s) => s.fingerprint)).size).toBe(1);
    expect(signers[0]!.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(dir, 'cache'))).toEqual(['apt-signing-key.asc']); // no temp files left
    const again = await loadAptSigner(path, { create: true });
    expect(again.fingerprint).toBe(signers[0]!.fingerprint);
    expect(again.publicArmored).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    await gpgvAccepts(again, RELEASE, 'own');
    // InRelease keeps the text's own line ends (apt reads it as given)
    expect((await again.clearsign(RELEASE)).toString()).not.toContain('\r');
  });
});

describe('apt_signing_key', () => {
  const gnupg = join(dir, 'gnupg');
  const genv = { ...process.env, GNUPGHOME: gnupg };

  it('takes a key exported by gpg (armored and binary)', async () => {
    mkdirSync(gnupg, { recursive: true, mode: 0o700 });
    expect((await run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'Site apt <apt@example.invalid>', 'ed25519', 'sign', 'never'], genv)).code).toBe(0);
    const armored = await run('gpg', ['--batch', '--armor', '--export-secret-keys'], genv);
    const binary = await run('gpg', ['--batch', '--export-secret-keys'], genv);
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec((await run('gpg', ['--batch', '--with-colons', '--list-secret-keys'], genv)).stdout.toString())![1];
    writeFileSync(join(dir, 'site.asc'), armored.stdout);
    writeFileSync(join(dir, 'site.gpg'), binary.stdout);
    for (const f of ['site.asc', 'site.gpg']) {
      const s = await loadAptSigner(join(dir, f), { create: false });
      expect(s.fingerprint).toBe(fpr);
      await gpgvAccepts(s, RELEASE, `check-${f}`);
    }
  });

  it('refuses a protected key, a missing file and something else, in one line each', async () => {
    expect((await run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', 'secret', '--quick-gen-key', 'Locked <l@example.invalid>', 'ed25519', 'sign', 'never'], genv)).code).toBe(0);
    const locked = await run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', 'secret', '--armor', '--export-secret-keys', 'Locked'], genv);
    await run('gpgconf', ['--kill', 'gpg-agent'], genv);
    writeFileSync(join(dir, 'locked.asc'), locked.stdout);
    await expect(loadAptSigner(join(dir, 'locked.asc'), { create: false })).rejects.toMatchObject({ code: 'EUSAGE', message: expect.stringMatching(/protected by a passphrase/) });
    await expect(loadAptSigner(join(dir, 'nope.asc'), { create: false })).rejects.toMatchObject({ code: 'EUSAGE', message: expect.stringMatching(/nope\.asc: no such file/) });
    writeFileSync(join(dir, 'junk.asc'), 'not a key\n');
    await expect(loadAptSigner(join(dir, 'junk.asc'), { create: false })).rejects.toMatchObject({ code: 'EUSAGE', message: expect.stringMatching(/not an OpenPGP secret key/) });
  });
});
