/**
 * Signed apt repositories of `airlock serve`, against the real apt-get and
 * gpgv, with no `[trusted=yes]`: the product repository (`current` and a
 * release as suites) and the flat one, installs into a throwaway root, a
 * second update that is all `Hit`, `current` following a newly staged
 * release, and a relay between apt and the cache that alters bytes (a
 * Packages file, InRelease) which apt must refuse. All on 127.0.0.1.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrustedRoot, verifyRelease, type ReleaseManifest } from '../../manifests/index.js';
import { repoRoot } from '../../scripts/world/cache.js';
import { signRelease } from '../../scripts/world/keys.js';
import { makeFixture, openTestStore, type Fixture } from '../server/http/fixture.js';

const CLI = join(repoRoot(), 'dist/server/cli/main.js');

let fx: Fixture;
let proc: ChildProcess;
let base: string;
let port: number;

interface Ran {
  code: number;
  out: string;
}

/** Runs a command; never throws for its exit status (the caller asserts it), only when it cannot start. */
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      if (e && typeof e.code === 'string') return reject(new Error(`${cmd}: ${e.message}`));
      resolve({ code: e ? Number(e.code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

async function ok(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${r.out}`);
  return r.out;
}

async function startServe(cacheDir: string, dir: string): Promise<{ proc: ChildProcess; port: number }> {
  mkdirSync(dir, { recursive: true });
  const cfg = join(dir, 'airlock.yml');
  writeFileSync(cfg, `cache_dir: ${cacheDir}\n`);
  const child = spawn(process.execPath, [CLI, 'serve', '--config', cfg, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const p = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${lines.join('\n')}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      lines.push(d.toString());
      const m = /"address":"https?:\/\/[^"]*:(\d+)"/.exec(d.toString());
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
    child.on('exit', (code) => reject(new Error(`airlock serve exited ${code}: ${lines.join('\n')}`)));
  });
  return { proc: child, port: p };
}

/** An HTTP relay in front of the cache that may alter a response body (a man in the middle on the LAN). */
async function relay(alter: (path: string, body: Buffer) => Buffer): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const up = http.request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: { ...req.headers, host: `127.0.0.1:${port}` } }, (ur) => {
      const parts: Buffer[] = [];
      ur.on('data', (c: Buffer) => parts.push(c));
      ur.on('end', () => {
        const body = alter(req.url ?? '', Buffer.concat(parts));
        const headers = { ...ur.headers, 'content-length': String(body.length) };
        delete headers['transfer-encoding'];
        res.writeHead(ur.statusCode ?? 502, headers);
        res.end(req.method === 'HEAD' ? undefined : body);
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** A throwaway apt root (APT_CONFIG with Dir) whose dpkg installs under it; host apt state untouched. */
async function aptRoot(name: string, sources: string): Promise<{ root: string; env: NodeJS.ProcessEnv; lists: () => string[] }> {
  const R = join(fx.dir, name);
  for (const d of ['etc/apt/apt.conf.d', 'etc/apt/preferences.d', 'etc/apt/sources.list.d', 'etc/apt/trusted.gpg.d', 'var/lib/apt/lists/partial',
    'var/cache/apt/archives/partial', 'var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'var/log/apt', 'dl']) {
    mkdirSync(join(R, d), { recursive: true });
  }
  // what hello needs is "installed" already, so apt installs hello alone
  writeFileSync(join(R, 'var/lib/dpkg/status'), await ok('dpkg-query', ['-s', 'libc6', 'libgcc-s1', 'gcc-12-base']));
  writeFileSync(join(R, 'etc/apt/sources.list'), sources);
  writeFileSync(join(R, 'apt.conf'), [
    `Dir "${R}/";`, `Dir::State::status "${R}/var/lib/dpkg/status";`, 'APT::Sandbox::User "root";', 'Acquire::Languages "none";',
    'Acquire::http::Proxy "false";', `DPkg::Options { "--root=${R}"; "--force-not-root"; "--log=${R}/var/log/dpkg.log"; };`, '',
  ].join('\n'));
  const env = { ...process.env, APT_CONFIG: join(R, 'apt.conf'), http_proxy: '', HTTP_PROXY: '' };
  return { root: R, env, lists: () => readdirSync(join(R, 'var/lib/apt/lists')).filter((f) => f !== 'partial' && f !== 'lock') };
}

let keyring: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (scripts/test.sh does)`);
  fx = await makeFixture();
  await fx.store.close();
  const s = await startServe(join(fx.dir, 'cache'), join(fx.dir, 'serve'));
  proc = s.proc;
  port = s.port;
  base = `http://127.0.0.1:${port}`;
  keyring = join(fx.dir, 'airlock.gpg');
  const res = await fetch(`${base}/apt/airlock.gpg`);
  expect(res.status).toBe(200);
  writeFileSync(keyring, Buffer.from(await res.arrayBuffer()));
});

afterAll(async () => {
  if (proc && proc.exitCode === null) {
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
  }
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

describe('the signing key', () => {
  it('is made on first use in the cache dir (0600) and served binary and armored, with one fingerprint', async () => {
    const file = join(fx.dir, 'cache', 'apt-signing-key.asc');
    mkdirSync(join(fx.dir, 'gnupg-show'), { recursive: true, mode: 0o700 });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toMatch(/^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
    const shown = await ok('gpg', ['--batch', '--with-colons', '--show-keys', keyring], { env: { ...process.env, GNUPGHOME: join(fx.dir, 'gnupg-show') } });
    const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(shown)![1]!;
    expect(shown).toMatch(/^pub:[^:]*:255:22:/m); // ed25519 (EdDSA, algorithm 22)
    const asc = await fetch(`${base}/apt/airlock.asc`);
    expect(asc.headers.get('x-airlock-key-fingerprint')).toBe(fpr);
    const ascFile = join(fx.dir, 'airlock.asc');
    writeFileSync(ascFile, await asc.text());
    expect(await ok('gpg', ['--batch', '--with-colons', '--show-keys', ascFile], { env: { ...process.env, GNUPGHOME: join(fx.dir, 'gnupg-show') } })).toContain(fpr);
    // gpgv itself accepts the indexes' signatures
    const inRelease = join(fx.dir, 'InRelease');
    writeFileSync(inRelease, Buffer.from(await (await fetch(`${base}/apt/stackato/dists/current/InRelease`)).arrayBuffer()));
    expect(await ok('gpgv', ['--keyring', keyring, inRelease])).toMatch(/Good signature/);
  });
});

describe('the product repository, signed-by, no trusted=yes', () => {
  it('apt-get update and install hello from suite current; a second update is all Hit', async () => {
    const { root, env, lists } = await aptRoot('aptroot-current', `deb [signed-by=${keyring}] ${base}/apt/stackato current main\n`);
    const first = await ok('apt-get', ['update'], { env });
    expect(first).not.toMatch(/^(Err|W|E):/m);
    expect(first).toMatch(/^Get:\d+ \S+ current InRelease/m);
    expect(lists().some((f) => f.endsWith('_current_main_binary-amd64_Packages'))).toBe(true);
    await ok('apt-get', ['install', '-y', 'hello'], { env });
    expect(existsSync(join(root, 'usr/bin/hello'))).toBe(true);
    expect(readFileSync(join(root, 'var/log/dpkg.log'), 'utf8')).toMatch(/status installed hello:amd64 2\.10-3/);
    expect(await ok(join(root, 'usr/bin/hello'), [])).toMatch(/Hello, world!/);

    const second = await ok('apt-get', ['update'], { env });
    expect(second).toMatch(/^Hit:\d+ \S+ current InRelease/m);
    expect(second).not.toMatch(/^(Get|Err|W|E):/m);
  });

  it('a release name as the suite; the flat repository is signed as well', async () => {
    const { env } = await aptRoot('aptroot-named', [
      `deb [signed-by=${keyring}] ${base}/apt/stackato 3.6.2 main`,
      `deb [signed-by=${keyring}] ${base}/apt/3.6.2 ./`, '',
    ].join('\n'));
    const upd = await ok('apt-get', ['update'], { env });
    expect(upd).not.toMatch(/^(Err|W|E):/m);
    expect(upd).toMatch(/3\.6\.2 InRelease/);
    expect(upd).toMatch(/\/apt\/3\.6\.2 \.\/ InRelease|3\.6\.2 \.\/ InRelease/);
    const dl = join(fx.dir, 'aptroot-named', 'dl');
    await ok('apt-get', ['download', 'tree'], { env, cwd: dl });
    expect(readdirSync(dl)).toEqual(['tree_2.1.0-1_amd64.deb']);
  });

  it('a key other than the cache\'s is refused (NO_PUBKEY)', async () => {
    const other = join(fx.dir, 'other.gpg');
    const gh = join(fx.dir, 'gnupg-other');
    mkdirSync(gh, { recursive: true, mode: 0o700 });
    const genv = { ...process.env, GNUPGHOME: gh };
    await ok('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'Someone Else <x@example.invalid>', 'ed25519', 'sign', 'never'], { env: genv });
    writeFileSync(other, (await new Promise<Buffer>((res, rej) => execFile('gpg', ['--batch', '--export'], { env: genv, encoding: 'buffer' }, (e, o) => (e ? rej(e) : res(o))))));
    await run('gpgconf', ['--kill', 'gpg-agent'], { env: genv });
    const { env, lists } = await aptRoot('aptroot-otherkey', `deb [signed-by=${other}] ${base}/apt/stackato current main\n`);
    const r = await run('apt-get', ['update'], { env });
    expect(r.out).toMatch(/NO_PUBKEY|not signed/);
    expect(lists().filter((f) => f.includes('Packages'))).toEqual([]);
  });
});

describe('a man in the middle', () => {
  it('a Packages file altered on the way: apt refuses it (hash mismatch) and keeps no index', async () => {
    const mitm = await relay((path, body) => {
      if (!/\/Packages(\.gz|\.xz)?$/.test(path) || body.length === 0) return body;
      const b = Buffer.from(body);
      b[b.length >> 1]! ^= 0x20;
      return b;
    });
    try {
      const { env, lists } = await aptRoot('aptroot-mitm-packages', `deb [signed-by=${keyring}] ${mitm.url}/apt/stackato current main\n`);
      const r = await run('apt-get', ['update'], { env });
      if (process.env.AIRLOCK_TEST_SHOW) console.log(r.out);
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(/Hash Sum mismatch|File has unexpected size/);
      expect(lists().filter((f) => f.includes('Packages'))).toEqual([]);
      const install = await run('apt-get', ['install', '-y', '--download-only', 'hello'], { env });
      expect(install.code).not.toBe(0);
    } finally {
      await mitm.close();
    }
  });

  it('an InRelease altered on the way (a hash in the signed text): apt refuses the repository', async () => {
    const mitm = await relay((path, body) => {
      if (!/\/(InRelease|Release)$/.test(path)) return body;
      // swap one hex digit of the first SHA256 line: what an attacker serving other Packages must do
      return Buffer.from(body.toString('utf8').replace(/^( [0-9a-f])([0-9a-f])/m, (_m, a: string, c: string) => `${a}${c === '0' ? '1' : '0'}`), 'utf8');
    });
    try {
      const { env, lists } = await aptRoot('aptroot-mitm-inrelease', `deb [signed-by=${keyring}] ${mitm.url}/apt/stackato current main\n`);
      const r = await run('apt-get', ['update'], { env });
      if (process.env.AIRLOCK_TEST_SHOW) console.log(r.out);
      expect(r.out).toMatch(/BADSIG|signatures were invalid|not signed/);
      expect(r.out).toMatch(/^(W|E):/m);
      expect(lists().filter((f) => f.includes('Packages'))).toEqual([]);
    } finally {
      await mitm.close();
    }
  });
});

describe('current follows the newest ready release', () => {
  it('a newly staged release (higher serial) becomes current: the next update fetches it, tree is gone from it', async () => {
    const { env } = await aptRoot('aptroot-follow', `deb [signed-by=${keyring}] ${base}/apt/stackato current main\n`);
    await ok('apt-get', ['update'], { env });
    expect(await ok('apt-cache', ['policy'], { env })).toMatch(/v=3\.6\.2,o=airlock,a=current,n=current/);
    expect(await ok('apt-cache', ['show', 'tree'], { env })).toMatch(/^Package: tree$/m);

    // release 3.7.0, serial 18: the same debs but tree, signed by the fixture's release key
    const now = new Date();
    const payload: ReleaseManifest = {
      ...fx.manifest, release: '3.7.0', serial: 18,
      issued: new Date(now.getTime() - 1800_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      artifacts: fx.manifest.artifacts.filter((a) => !(a.kind === 'deb' && a.package === 'tree')),
    };
    const key = createPrivateKey(await readFile(join(fx.dir, 'keys', 'release.key')));
    const envelope = signRelease(payload, { release: { privateKey: key } } as never, [key]);
    const root = loadTrustedRoot(await readFile(join(fx.dir, 'keys', 'root.json')), now);
    const store = await openTestStore(join(fx.dir, 'cache'));
    try {
      await store.putRelease(verifyRelease(envelope, { root, now }));
    } finally {
      await store.close();
    }

    const upd = await ok('apt-get', ['update'], { env });
    expect(upd).toMatch(/^Get:\d+ \S+ current InRelease/m);
    expect(upd).not.toMatch(/^(Err|W|E):/m);
    expect(await ok('apt-cache', ['policy'], { env })).toMatch(/v=3\.7\.0,o=airlock,a=current,n=current/);
    const tree = await run('apt-cache', ['show', 'tree'], { env });
    expect(tree.out).not.toMatch(/^Package: tree$/m);
    // the release pinned by name still has it
    expect((await fetch(`${base}/apt/stackato/dists/3.6.2/main/binary-amd64/Packages`).then((r) => r.text()))).toMatch(/^Package: tree$/m);
  });
});

describe('the page at /apt/R/', () => {
  it('prints lines to paste, built from the request\'s Host', async () => {
    const own = await (await fetch(`${base}/apt/3.6.2/`)).text();
    expect(own).toContain(`deb [signed-by=/etc/apt/keyrings/airlock.gpg] ${base}/apt/stackato current main`);
    expect(own).toContain(`deb [signed-by=/etc/apt/keyrings/airlock.gpg] ${base}/apt/3.6.2 ./`);
    expect(own).toContain(`curl -fsS ${base}/apt/airlock.gpg -o /etc/apt/keyrings/airlock.gpg`);
    expect(own).not.toContain('null');
    const product = await (await fetch(`${base}/apt/stackato/`)).text();
    expect(product).toContain(`deb [signed-by=/etc/apt/keyrings/airlock.gpg] ${base}/apt/stackato current main`);
    expect((await fetch(`${base}/apt/nothing/`)).status).toBe(404);
    const lan = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/apt/3.6.2/', headers: { host: 'cache.lan:7070' } }, (res) => {
        let s = '';
        res.on('data', (c: Buffer) => (s += c.toString()));
        res.on('end', () => resolve(s));
      }).on('error', reject);
    });
    expect(lan).toContain('deb [signed-by=/etc/apt/keyrings/airlock.gpg] http://cache.lan:7070/apt/stackato current main');
  });
});
