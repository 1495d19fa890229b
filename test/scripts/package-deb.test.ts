/**
 * scripts/package-deb.sh: builds the .deb (from the built dist/ and a pruned
 * copy of node_modules), which is then unpacked into a throwaway root with
 * dpkg -x; its wrappers run both programs with this host's Node 20.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, REPO, runCmd } from '../support/cli.js';

const missing = ['dpkg-deb', 'dpkg'].filter((t) => !['/usr/bin', '/bin'].some((d) => existsSync(join(d, t))));
if (missing.length > 0 && process.env.CI === 'true') throw new Error(`${missing.join(', ')} not installed (CI=true makes this a failure)`);

let dir: string;
let deb: string;
let root: string;

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()) => runCmd(cmd, args, env);

describe.skipIf(missing.length > 0)('the Debian package', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-deb-'));
    // dist/ is what the suite built; the script reuses it and the pruned node_modules of an earlier run
    const built = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
      execFile('bash', [join(REPO, 'scripts', 'package-deb.sh'), '--out', join(dir, 'out'), '--no-build'], { timeout: 180_000 }, (err, stdout, stderr) =>
        done({ code: err ? 1 : 0, stdout, stderr }),
      ),
    );
    if (built.code !== 0) throw new Error(`package-deb.sh failed: ${built.stderr}`);
    deb = built.stdout.trim().split('\n').pop()!;
    root = join(dir, 'root');
    const x = await run('dpkg', ['-x', deb, root]);
    if (x.code !== 0) throw new Error(`dpkg -x: ${x.stderr}`);
  }, 200_000);
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('is named and described for dpkg: airlock, Recommends nodejs (>= 20), Depends only on adduser, the config a conffile', async () => {
    expect(deb).toMatch(/airlock_\d+\.\d+\.\d+_[a-z0-9]+\.deb$/);
    const info = await run('dpkg-deb', ['-f', deb]);
    expect(info.stdout).toMatch(/^Package: airlock$/m);
    expect(info.stdout).toMatch(/^Recommends: nodejs \(>= 20\)$/m);
    expect(info.stdout).toMatch(/^Depends: adduser$/m);
    expect((await run('dpkg-deb', ['--ctrl-tarfile', deb])).code).toBe(0);
    const conffiles = await run('sh', ['-c', `dpkg-deb --info '${deb}' conffiles`]);
    expect(conffiles.stdout.trim()).toBe('/etc/airlock/airlock.yml');
  });

  it('installs both programs under /usr/lib/airlock with wrappers in /usr/bin, the units, the config and the examples; no devDependencies, no test world', () => {
    for (const f of [
      'usr/bin/airlock', 'usr/bin/airlock-node',
      'usr/lib/airlock/dist/server/cli/main.js', 'usr/lib/airlock/dist/client/cli/main.js', 'usr/lib/airlock/package.json',
      'usr/lib/airlock/node_modules/koa/package.json', 'usr/lib/airlock/node_modules/classic-level/package.json',
      'lib/systemd/system/airlock-serve.service', 'lib/systemd/system/airlock-verify.service', 'lib/systemd/system/airlock-verify.timer',
      'etc/airlock/airlock.yml', 'usr/share/doc/airlock/examples/airlock.yml', 'usr/share/doc/airlock/examples/airlock-node.yml',
      'usr/share/doc/airlock/docs/operations.md',
    ]) expect(existsSync(join(root, f)), f).toBe(true);
    for (const f of ['usr/lib/airlock/node_modules/vitest', 'usr/lib/airlock/node_modules/typescript', 'usr/lib/airlock/dist/scripts']) {
      expect(existsSync(join(root, f)), f).toBe(false);
    }
    expect(readdirSync(join(root, 'usr/lib/airlock/dist/server/cli')).some((f) => f.endsWith('.map'))).toBe(false);
  });

  it('airlock --help and airlock-node --help run through the wrappers with this host\'s node', async () => {
    const a = await run(join(root, 'usr/bin/airlock'), ['--help']);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/^Usage: airlock /m);
    for (const c of ['stage', 'serve', 'relocate', 'verify', 'gc']) expect(a.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
    const n = await run(join(root, 'usr/bin/airlock-node'), ['--help']);
    expect(n.code, n.stderr).toBe(0);
    expect(n.stdout).toMatch(/^Usage: airlock-node /m);
    expect(n.stdout).toMatch(/^\s+upgrade\b/m);
    const s = await run(join(root, 'usr/bin/airlock'), ['serve', '--help']);
    expect(s.code, s.stderr).toBe(0);
  });

  it('the installed airlock takes the installed /etc/airlock/airlock.yml (status of an empty cache: exit 1 "no release staged", not a usage error)', async () => {
    const r = await run(join(root, 'usr/bin/airlock'), ['status', '--config', join(root, 'etc/airlock/airlock.yml'), '--cache-dir', join(dir, 'cache')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^no release staged in /);
    expect(r.code).toBe(1);
  });

  it('a Node older than 20 (Debian 12\'s 18) is refused by the wrapper in one line saying what to install, exit 1', async () => {
    const old = join(dir, 'node18');
    writeFileSync(old, '#!/bin/sh\nif [ "$1" = -e ]; then printf 18; else echo v18.19.0; fi\n');
    chmodSync(old, 0o755);
    for (const w of ['airlock', 'airlock-node']) {
      const r = await run(join(root, 'usr/bin', w), ['--help'], cleanEnv({ AIRLOCK_NODE: old }));
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`${w}: Node.js 20 or newer is needed; ${old} is v18.19.0`);
      expect(r.stderr).toMatch(/install nodejs >= 20/);
    }
  });

  it('airlock-serve.service: a dedicated user, hardened (systemd-analyze security rates it OK or better), reload by SIGHUP', async () => {
    const unit = readFileSync(join(root, 'lib/systemd/system/airlock-serve.service'), 'utf8');
    for (const line of [
      'User=airlock', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/airlock', 'PrivateTmp=yes', 'ProtectHome=yes',
      'ExecReload=/bin/kill -HUP $MAINPID', 'ExecStart=/usr/bin/airlock serve --config /etc/airlock/airlock.yml',
    ]) expect(unit.split('\n')).toContain(line);
    const sec = await run('systemd-analyze', ['security', '--offline=true', `--root=${root}`, join(root, 'lib/systemd/system/airlock-serve.service')]);
    const m = /Overall exposure level for airlock-serve\.service: ([\d.]+) (\w+)/.exec(sec.stdout + sec.stderr);
    if (!m && process.env.CI !== 'true' && !existsSync('/usr/bin/systemd-analyze')) return;
    expect(m, sec.stdout + sec.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(4);
    const postinst = (await run('dpkg-deb', ['--info', deb, 'postinst'])).stdout;
    expect(postinst).toMatch(/adduser --system --group --home \/var\/lib\/airlock/);
  });
});
