/**
 * airlock-node against the real thing: a release staged from the real world
 * (nginx, docker-registry) through squid by `airlock stage`, served by
 * `airlock serve`, installed by `airlock-node upgrade` into throwaway roots
 * with the real dpkg, gem and skopeo checking the result.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync, openSync, readSync, writeSync, closeSync, chmodSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTrust, releasePayload, signRelease, startWorld, type Trust, type World } from '../../scripts/world/index.js';
import { freePorts, httpStatus } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';

const pexec = promisify(execFile);
const REPO = join(import.meta.dirname, '..', '..');
const AIRLOCK = join(REPO, 'dist', 'server', 'cli', 'main.js');
const NODE_CLI = join(REPO, 'dist', 'client', 'cli', 'main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cli: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...cleanEnv(), ...env }, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|no|all)_proxy$/i.test(k)) delete env[k];
  delete env.AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP;
  return env;
}

async function waitFor(what: string, ok: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('airlock-node upgrade (e2e, real world)', () => {
  let world: World;
  let tmp: string;
  let trust: Trust;
  let cacheDir: string;
  let serve: Server;
  let cacheUrl: string;
  let port: number;
  const RELEASE = '1.0.0';

  const startServe = async (): Promise<void> => {
    serve = startServer('airlock-serve', process.execPath, [AIRLOCK, 'serve', '--cache-dir', cacheDir, '--listen', `127.0.0.1:${port}`, '--grace', '1'], join(tmp, 'serve.log'), { env: cleanEnv() });
    await waitFor('airlock serve', async () => (await httpStatus(`${cacheUrl}/healthz`)) === 200);
  };

  const stage = async (name: string, payload: ReturnType<typeof releasePayload>, extra: string[] = []): Promise<void> => {
    const envPath = join(tmp, `${name}.envelope.json`);
    writeFileSync(envPath, signRelease(payload, trust));
    const r = await run(AIRLOCK, [
      'stage', envPath, '--cache-dir', cacheDir, '--trust', trust.rootJsonPath,
      '--proxy', world.proxyUrl, '--insecure-registry', world.registryAddress, ...extra,
    ]);
    expect(r.code, `stage ${name}: ${r.stderr}${r.stdout}`).toBe(0);
  };

  const upgrade = (root: string, state: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Run> =>
    run(NODE_CLI, ['upgrade', '--cache', cacheUrl, '--root', root, '--state-dir', state, '--trust', trust.rootJsonPath, ...extra], env);

  const fresh = async (label: string): Promise<{ root: string; state: string }> => {
    const d = await mkdtemp(join(tmp, `${label}-`));
    return { root: join(d, 'root'), state: join(d, 'state') };
  };

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'airlock-node-e2e-'));
    world = await startWorld();
    trust = makeTrust(join(tmp, 'keys'));
    cacheDir = join(tmp, 'cache');
    [port] = await freePorts(1);
    cacheUrl = `http://127.0.0.1:${port}`;
    await stage(RELEASE, releasePayload(world, { product: 'stackato', release: RELEASE, serial: 1 }));
    await startServe();
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    await world?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const imageLayout = (root: string): string => {
    const [hostPort] = world.registryAddress.split('/');
    return join(root, 'var', 'lib', 'airlock', 'images', hostPort!.replace(/:/g, '_'), 'demo', 'app');
  };

  it('installs everything with the real installers; a second run says "already at"; --force runs again', async () => {
    const { root, state } = await fresh('full');
    const r = await upgrade(root, state);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/installed 1\.0\.0/);
    // files: the tarball extracted and the copy placed
    const app = world.artifacts.find((a) => a.path === 'files/app.tar.gz')!;
    expect(app).toBeDefined();
    expect(readdirSync(join(root, 'opt', 'demo')).length).toBeGreaterThan(1);
    expect(readFileSync(join(root, 'opt', 'demo', 'blob.bin')).equals(readFileSync(world.artifacts.find((a) => a.path === 'files/blob.bin')!.localPath))).toBe(true);
    // deb: dpkg's own database in the root says so
    const dpkg = await pexec('dpkg', [`--root=${root}`, '-s', 'hello']);
    expect(dpkg.stdout).toMatch(/Status: install ok installed/);
    // gem: listed in the root's gem home
    const gems = await pexec('gem', ['list', '--local'], { env: { ...cleanEnv(), GEM_HOME: join(root, 'var', 'lib', 'gems'), GEM_PATH: join(root, 'var', 'lib', 'gems') } });
    const gem = world.artifacts.find((a) => a.kind === 'gem')!;
    expect(gems.stdout).toContain((gem as { gem: string }).gem);
    // image: skopeo accepts the layout
    const inspect = await pexec('skopeo', ['inspect', `oci:${imageLayout(root)}:${world.image!.tag}`]);
    expect(JSON.parse(inspect.stdout).Digest).toBe(world.image!.digest);
    // status
    const st = await run(NODE_CLI, ['status', '--state-dir', state, '--json']);
    expect(JSON.parse(st.stdout.trim().split('\n').pop()!).installed.release).toBe(RELEASE);

    const again = await upgrade(root, state);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already at 1\.0\.0/);

    const forced = await upgrade(root, state, ['--force', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    const last = JSON.parse(forced.stdout.trim().split('\n').pop()!);
    expect(last).toMatchObject({ ok: true, status: 'installed', release: RELEASE, skipped: 0 });
    expect(last.ran).toBeGreaterThan(3);
  }, 120_000);

  it('SIGKILL during install: the re-run resumes after the last finished step', async () => {
    const { root, state } = await fresh('kill');
    const child = spawn(process.execPath, [NODE_CLI, 'upgrade', '--cache', cacheUrl, '--root', root, '--state-dir', state, '--trust', trust.rootJsonPath], {
      env: { ...cleanEnv(), AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP: '2' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    await waitFor('the pause after step 2', () => err.includes('test pause after step 2'), 60_000);
    child.kill('SIGKILL');
    await exited;
    const journal = join(state, 'journal', `${RELEASE}.jsonl`);
    const before = readFileSync(journal, 'utf8').trim().split('\n');
    expect(before).toHaveLength(2);
    expect(existsSync(join(state, 'installed.json'))).toBe(false);

    const r = await upgrade(root, state, ['--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(last.skipped).toBe(2);
    const lines = readFileSync(journal, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number });
    const steps = lines.map((l) => l.step);
    expect(new Set(steps).size).toBe(steps.length); // no step ran twice
    expect(steps.length).toBe(last.steps);
    const dpkg = await pexec('dpkg', [`--root=${root}`, '-s', 'hello']);
    expect(dpkg.stdout).toMatch(/install ok installed/);
  }, 120_000);

  it('a manifest signed by an unknown key or with an older serial: refused before any download', async () => {
    // unknown key: the node trusts another root
    const other = makeTrust(join(tmp, 'other-keys'));
    const a = await fresh('unknown');
    const r1 = await run(NODE_CLI, ['upgrade', '--cache', cacheUrl, '--root', a.root, '--state-dir', a.state, '--trust', other.rootJsonPath]);
    expect(r1.code).toBe(3);
    expect(r1.stderr).toMatch(/ESIGNATURE/);
    expect(existsSync(join(a.state, 'staging', 'blobs'))).toBe(false);
    expect(existsSync(a.root)).toBe(false);

    // older serial: the node already accepted serial 7
    const b = await fresh('rollback');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(b.state, { recursive: true });
    writeFileSync(join(b.state, 'accepted.json'), JSON.stringify({ stackato: { product: 'stackato', serial: 7, digest: 'f'.repeat(64) } }));
    const r2 = await upgrade(b.root, b.state);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(/EROLLBACK/);
    expect(existsSync(join(b.state, 'staging', 'blobs'))).toBe(false);

  }, 120_000);

  it('the cache stopped: exit 5; once it is back the re-run finishes', async () => {
    const { root, state } = await fresh('down');
    await serve.stop();
    const r = await upgrade(root, state);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/EUPSTREAM/);
    await startServe();
    const again = await upgrade(root, state);
    expect(again.code, again.stderr).toBe(0);
  }, 120_000);

  it('a blob flipped on the cache node disk: EINTEGRITY, nothing of it installed', async () => {
    // the 1 MiB file: serve keeps small blobs in memory, so a flip on disk of a small one would not show
    const app = world.artifacts.find((a) => a.path === 'files/blob.bin')!;
    const blob = join(cacheDir, 'blobs', 'sha256', app.sha256.slice(0, 2), app.sha256);
    const mode = statSync(blob).mode;
    chmodSync(blob, 0o644);
    const fd = openSync(blob, 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, 100);
    const flipped = Buffer.from([one[0]! ^ 0xff]);
    writeSync(fd, flipped, 0, 1, 100);
    try {
      const { root, state } = await fresh('flip');
      const r = await upgrade(root, state);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/EINTEGRITY/);
      expect(r.stderr).toContain('files/blob.bin');
      expect(existsSync(join(root, 'opt'))).toBe(false);
      expect(existsSync(join(state, 'staging', 'blobs', 'sha256', app.sha256.slice(0, 2), app.sha256))).toBe(false);
    } finally {
      writeSync(fd, one, 0, 1, 100);
      closeSync(fd);
      chmodSync(blob, mode);
    }
  }, 120_000);

  // last: it puts a second product on the cache
  it('an expired manifest: refused before any download unless --accept-expired-until', async () => {
    // expired: staged with --accept-expired-until on the cache, refused by the node unless it says so too
    const past = new Date(Date.now() - 10 * 86_400_000);
    await stage('0.9.0', releasePayload(world, { product: 'stackato-lts', release: '0.9.0', serial: 1, issued: past, expires: new Date(past.getTime() + 86_400_000), select: ['files/blob.bin'] }), [
      '--accept-expired-until', new Date(Date.now() + 86_400_000).toISOString(),
    ]);
    const c = await fresh('expired');
    const r3 = await upgrade(c.root, c.state, ['--release', '0.9.0']);
    expect(r3.code, r3.stderr).toBe(3);
    expect(r3.stderr).toMatch(/EEXPIRED/);
    expect(existsSync(join(c.state, 'staging', 'blobs'))).toBe(false);
    const r4 = await upgrade(c.root, c.state, ['--json', '--release', '0.9.0', '--accept-expired-until', new Date(Date.now() + 86_400_000).toISOString()]);
    expect(r4.code, r4.stderr + r4.stdout).toBe(0);
    expect(r4.stdout).toMatch(/expired/);
  }, 120_000);
});
