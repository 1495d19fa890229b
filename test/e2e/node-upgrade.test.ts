/**
 * airlock-node against the real thing: a release staged from the real world
 * (nginx, docker-registry) through squid by `airlock stage`, served by
 * `airlock serve`, installed by `airlock-node upgrade` into throwaway roots
 * with the real dpkg, gem and skopeo checking the result.
 *
 * One world, one cache and one `airlock serve` for the whole file. Tests that
 * only read the cache run concurrently (each in its own root and state dir);
 * those that stop the cache, flip a blob or add a product run after them, in
 * order. Download interruptions use a 64 MiB blob in a release of its own and
 * the client's AIRLOCK_NODE_TEST_PAUSE_AT_BYTES hook (a known point mid-blob);
 * bytes on the wire are read from serve's access log.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, readdirSync, writeFileSync, openSync, readSync, writeSync, closeSync, chmodSync, statSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTrust, releasePayload, signRelease, startWorld, type Trust, type World } from '../../scripts/world/index.js';
import { freePorts, httpStatus, waitPortClosed } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { AIRLOCK, NODE_CLI, cleanEnv, runCmd as runCommand, type Run } from '../support/cli.js';

const pexec = promisify(execFile);

function runCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return runCommand(cmd, args, cleanEnv(env));
}

function run(cli: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return runCmd(process.execPath, [cli, ...args], env);
}

/** JSON lines of a --json run (progress and notes included). */
function events(stdout: string): Array<Record<string, unknown>> {
  return stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/** One request line of serve's access log (pino JSON on its stdout). */
interface AccessLine {
  url: string;
  status: number;
  bytes: number;
  remote?: string;
  aborted?: boolean;
}

function accessLog(path: string): AccessLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l) as AccessLine);
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
  const BIG = 'big-1';
  const MiB = 2 ** 20;
  let bigCacheDir: string;
  let big: { sha256: string; size: number };
  /** undone in afterAll, newest first: tmpfs mounts, network namespaces, servers in them */
  const cleanups: Array<() => Promise<void>> = [];
  const serveLog = (): string => join(tmp, 'serve.log');

  const startServe = async (): Promise<void> => {
    serve = startServer('airlock-serve', process.execPath, [AIRLOCK, 'serve', '--cache-dir', cacheDir, '--listen', `127.0.0.1:${port}`, '--grace', '1'], serveLog(), { env: cleanEnv() });
    await waitFor('airlock serve', async () => (await httpStatus(`${cacheUrl}/healthz`)) === 200);
  };

  const stage = async (name: string, payload: ReturnType<typeof releasePayload>, extra: string[] = [], dir = cacheDir): Promise<void> => {
    const envPath = join(tmp, `${name}.envelope.json`);
    writeFileSync(envPath, signRelease(payload, trust));
    const r = await run(AIRLOCK, [
      'stage', envPath, '--cache-dir', dir, '--trust', trust.rootJsonPath,
      '--proxy', world.proxyUrl, '--insecure-registry', world.registryAddress, ...extra,
    ]);
    expect(r.code, `stage ${name}: ${r.stderr}${r.stdout}`).toBe(0);
  };

  const upgradeVia = (cache: string, root: string, state: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Run> =>
    run(NODE_CLI, ['upgrade', '--cache', cache, '--root', root, '--state-dir', state, '--trust', trust.rootJsonPath, ...extra], env);
  const upgrade = (root: string, state: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Run> =>
    upgradeVia(cacheUrl, root, state, extra, env);

  /** An `airlock serve` of a test's own, so that a test may stop its cache while others keep theirs. */
  interface OwnServe {
    url: string;
    port: number;
    log: string;
    start(): Promise<void>;
    stop(): Promise<void>;
  }
  const ownServe = async (dir: string, name: string): Promise<OwnServe> => {
    const [p] = await freePorts(1);
    let server: Server | null = null;
    const own: OwnServe = {
      url: `http://127.0.0.1:${p}`,
      port: p!,
      log: join(tmp, `serve-${name}.log`),
      async start() {
        const srv = startServer(`airlock-serve-${name}`, process.execPath, [AIRLOCK, 'serve', '--cache-dir', dir, '--listen', `127.0.0.1:${p}`, '--grace', '1'], own.log, { env: cleanEnv() });
        server = srv;
        await waitFor(`airlock serve (${name})`, async () => {
          if (srv.exited()) throw new Error(srv.exited()!);
          return (await httpStatus(`${own.url}/healthz`)) === 200;
        });
      },
      async stop() {
        await server?.stop();
        server = null;
        await waitPortClosed(p!);
      },
    };
    cleanups.push(() => own.stop());
    await own.start();
    return own;
  };

  const fresh = async (label: string): Promise<{ root: string; state: string }> => {
    const d = await mkdtemp(join(tmp, `${label}-`));
    return { root: join(d, 'root'), state: join(d, 'state') };
  };

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'airlock-node-e2e-'));
    // one 64 MiB file beside the small ones, for the download interruptions: its own release in a cache of its own
    world = await startWorld({ extraFiles: [{ count: 1, size: 64 * MiB }] });
    trust = makeTrust(join(tmp, 'keys'));
    cacheDir = join(tmp, 'cache');
    bigCacheDir = join(tmp, 'cache-big');
    [port] = await freePorts(1);
    cacheUrl = `http://127.0.0.1:${port}`;
    const x = world.artifacts.find((a) => a.extra)!;
    big = { sha256: x.sha256, size: x.size };
    const bigPayload = releasePayload(world, { product: 'stackato-big', release: BIG, serial: 1, select: [x.path] });
    // the manifest's own fields only (the world's extras carry a bookkeeping `name`)
    bigPayload.artifacts = [{ path: x.path, kind: 'file', sha256: x.sha256, size: x.size, urls: x.urls, install: { copy: '/opt/big/big.bin' } }];
    await Promise.all([
      stage(RELEASE, releasePayload(world, { product: 'stackato', release: RELEASE, serial: 1, select: (a) => !a.path.startsWith('files/extra/') })),
      stage(BIG, bigPayload, [], bigCacheDir),
    ]);
    await startServe();
  }, 120_000);

  afterAll(async () => {
    for (const undo of cleanups.reverse()) await undo().catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
    await serve?.stop();
    await world?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  const imageLayout = (root: string): string => {
    const [hostPort] = world.registryAddress.split('/');
    return join(root, 'var', 'lib', 'airlock', 'images', hostPort!.replace(/:/g, '_'), 'demo', 'app');
  };

  // --- concurrent: each in its own root and state dir; those that stop a cache stop their own ---

  it.concurrent('installs everything with the real installers; a second run says "already at"; --force runs again', async ({ expect }) => {
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

  it.concurrent('SIGKILL during install: the re-run resumes after the last finished step', async ({ expect }) => {
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

  /** Start an upgrade of the big release with the pause-at-bytes hook; resolves once it paused there. */
  const pausedAt = async (cache: string, root: string, state: string, hook: string): Promise<{ child: ChildProcess; exited: Promise<number | null>; stderr: () => string }> => {
    // --wait-for-cache 0: a cache that went away fails at once here (test/e2e/node-cache-wait.test.ts waits for one)
    const child = spawn(process.execPath, [NODE_CLI, 'upgrade', '--cache', cache, '--release', BIG, '--root', root, '--state-dir', state, '--trust', trust.rootJsonPath, '--wait-for-cache', '0'], {
      env: { ...cleanEnv(), AIRLOCK_NODE_TEST_PAUSE_AT_BYTES: hook },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    cleanups.push(async () => void child.kill('SIGKILL')); // never leave a paused client behind (a no-op once it exited)
    try {
      await waitFor(`the pause at ${hook} bytes`, () => err.includes('test pause at'), 60_000);
    } catch (e) {
      child.kill('SIGKILL');
      throw new Error(`${(e as Error).message}: ${err}`);
    }
    return { child, exited, stderr: () => err };
  };

  /** serve's access log lines for one blob, from line `mark` on, once `want` of them are written (pino writes asynchronously). */
  const blobLines = async (log: string, mark: number, sha256: string, want: number): Promise<AccessLine[]> => {
    const pick = (): AccessLine[] => accessLog(log).slice(mark).filter((l) => l.url === `/blobs/sha256/${sha256}`);
    await waitFor(`${want} access log line(s) for the blob`, () => pick().length >= want);
    return pick();
  };

  it.concurrent('SIGKILL during download at two points: each run resumes the partial, the last moves only the remainder, the result is identical', async ({ expect }) => {
    const cache = await ownServe(bigCacheDir, 'dlkill');
    const { root, state } = await fresh('dlkill');
    const partial = join(state, 'staging', 'partial', big.sha256);
    const lengths: number[] = [];
    for (const at of [8 * MiB, 40 * MiB]) {
      const mark = accessLog(cache.log).length;
      const p = await pausedAt(cache.url, root, state, String(at));
      p.child.kill('SIGKILL');
      await p.exited;
      const len = statSync(partial).size;
      expect(len).toBeGreaterThanOrEqual(at);
      expect(len).toBeLessThan(big.size);
      const [line] = await blobLines(cache.log, mark, big.sha256, 1);
      // the second run asked for a Range from where the first one stopped
      if (lengths.length > 0) expect(line!.status).toBe(206);
      lengths.push(len);
    }
    expect(existsSync(join(root, 'opt', 'big'))).toBe(false);
    expect(existsSync(join(state, 'installed.json'))).toBe(false);

    const mark = accessLog(cache.log).length;
    const r = await upgradeVia(cache.url, root, state, ['--release', BIG, '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const resumed = lengths[1]!;
    expect(events(r.stdout).find((e) => e.event === 'staged')).toMatchObject({ sha256: big.sha256, fetched: true, resumedFrom: resumed, transferred: big.size - resumed });
    // on the wire, by the cache's own count: exactly the remainder, in one 206
    const wire = await blobLines(cache.log, mark, big.sha256, 1);
    expect(wire.map((l) => [l.status, l.bytes])).toEqual([[206, big.size - resumed]]);
    // identical: the installed copy and the staged blob have the signed digest; nothing is left partial
    expect(await sha256OfFile(join(root, 'opt', 'big', 'big.bin'))).toBe(big.sha256);
    expect(await sha256OfFile(join(state, 'staging', 'blobs', 'sha256', big.sha256.slice(0, 2), big.sha256))).toBe(big.sha256);
    expect(existsSync(partial)).toBe(false);
    expect(JSON.parse(readFileSync(join(state, 'installed.json'), 'utf8'))).toMatchObject({ release: BIG, product: 'stackato-big' });
  }, 120_000);

  it.concurrent('the cache stopped mid-download: exit 5 with the partial kept; with the cache back the re-run resumes it and finishes', async ({ expect }) => {
    const cache = await ownServe(bigCacheDir, 'dldown');
    const { root, state } = await fresh('dldown');
    const partial = join(state, 'staging', 'partial', big.sha256);
    // paused at 4 MiB for 8 s, and the cache stops meanwhile; the other 60 MiB cannot all sit in socket buffers, so the body breaks off
    const PAUSE_MS = 8000;
    const p = await pausedAt(cache.url, root, state, `${4 * MiB}:${PAUSE_MS}`);
    const t0 = Date.now();
    await cache.stop(); // SIGTERM: 1 s grace for downloads in flight, then their connections are cut
    expect(Date.now() - t0, 'the cache must be down before the client wakes up').toBeLessThan(PAUSE_MS - 500);
    const code = await p.exited;
    expect(code, p.stderr()).toBe(5);
    expect(p.stderr()).toMatch(/EUPSTREAM/);
    expect(p.stderr()).toContain('files/extra/');
    const len = statSync(partial).size;
    expect(len).toBeGreaterThanOrEqual(4 * MiB);
    expect(len).toBeLessThan(big.size);
    expect(existsSync(join(root, 'opt', 'big'))).toBe(false);

    await cache.start();
    const mark = accessLog(cache.log).length;
    const r = await upgradeVia(cache.url, root, state, ['--release', BIG, '--json']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(events(r.stdout).find((e) => e.event === 'staged')).toMatchObject({ resumedFrom: len, transferred: big.size - len });
    const wire = await blobLines(cache.log, mark, big.sha256, 1);
    expect(wire.map((l) => [l.status, l.bytes])).toEqual([[206, big.size - len]]);
    expect(await sha256OfFile(join(root, 'opt', 'big', 'big.bin'))).toBe(big.sha256);
  }, 120_000);

  it.concurrent('inside a network namespace whose only route is the cache node: the install needs no other network', async ({ expect, skip }) => {
    // names unique to this run; the veth pair disappears with its namespaces
    const tag = `al${process.pid % 100_000}`;
    const nsCache = `${tag}c`;
    const nsNode = `${tag}n`;
    const [cacheIp, nodeIp] = ['10.231.7.1', '10.231.7.2'];
    const ip = (...args: string[]): Promise<Run> => runCmd('ip', args);
    const made = await ip('netns', 'add', nsCache);
    if (made.code !== 0) {
      if (process.env.CI === 'true') throw new Error(`cannot create a network namespace (CI=true makes this a failure): ${made.stderr}`);
      skip(`no network namespaces here: ${made.stderr.trim()}`);
    }
    cleanups.push(async () => void (await ip('netns', 'del', nsCache)));
    const setup: string[][] = [
      ['netns', 'add', nsNode],
      ['link', 'add', `${tag}v0`, 'type', 'veth', 'peer', 'name', `${tag}v1`],
      ['link', 'set', `${tag}v0`, 'netns', nsCache],
      ['link', 'set', `${tag}v1`, 'netns', nsNode],
      ['-n', nsCache, 'addr', 'add', `${cacheIp}/30`, 'dev', `${tag}v0`],
      ['-n', nsNode, 'addr', 'add', `${nodeIp}/30`, 'dev', `${tag}v1`],
      ['-n', nsCache, 'link', 'set', 'lo', 'up'],
      ['-n', nsNode, 'link', 'set', 'lo', 'up'],
      ['-n', nsCache, 'link', 'set', `${tag}v0`, 'up'],
      ['-n', nsNode, 'link', 'set', `${tag}v1`, 'up'],
    ];
    for (const args of setup) {
      const r = await ip(...args);
      if (args[1] === 'add' && args[0] === 'netns' && r.code === 0) cleanups.push(async () => void (await ip('netns', 'del', nsNode)));
      expect(r.code, `ip ${args.join(' ')}: ${r.stderr}`).toBe(0);
    }
    // the node's namespace: one link route to the cache, no default route, nothing of the host's loopback
    const routes = await ip('-n', nsNode, 'route', 'show');
    expect(routes.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^10\.231\.7\.0\/30 dev \S+ proto kernel scope link src 10\.231\.7\.2/)]);
    const squidPort = new URL(world.proxyUrl).port;
    const squid = await runCmd('ip', ['netns', 'exec', nsNode, 'curl', '-sS', '-m', '2', '-o', '/dev/null', `http://127.0.0.1:${squidPort}/`]);
    expect(squid.code, 'the site proxy on the host loopback must be unreachable from the node namespace').toBe(7);

    // airlock serve in the cache namespace, on its veth address (the port is private to the namespace)
    const nsLog = join(tmp, 'serve-netns.log');
    const nsServe = startServer('airlock-serve-netns', 'ip', ['netns', 'exec', nsCache, process.execPath, AIRLOCK, 'serve', '--cache-dir', cacheDir, '--listen', `${cacheIp}:7070`, '--grace', '1'], nsLog, { env: cleanEnv() });
    cleanups.push(() => nsServe.stop());
    await waitFor('airlock serve in its namespace', async () => {
      if (nsServe.exited()) throw new Error(nsServe.exited()!);
      return (await runCmd('ip', ['netns', 'exec', nsNode, 'curl', '-fsS', '-m', '2', '-o', '/dev/null', `http://${cacheIp}:7070/healthz`])).code === 0;
    }, 30_000);

    const { root, state } = await fresh('netns');
    const r = await runCmd('ip', ['netns', 'exec', nsNode, process.execPath, NODE_CLI, 'upgrade', '--cache', `http://${cacheIp}:7070`, '--release', RELEASE, '--root', root, '--state-dir', state, '--trust', trust.rootJsonPath]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/installed 1\.0\.0/);
    expect((await pexec('dpkg', [`--root=${root}`, '-s', 'hello'])).stdout).toMatch(/Status: install ok installed/);
    const inspect = await pexec('skopeo', ['inspect', `oci:${imageLayout(root)}:${world.image!.tag}`]);
    expect(JSON.parse(inspect.stdout).Digest).toBe(world.image!.digest);
    // every byte came over the veth pair, from the node's address
    await waitFor('the netns access log', () => accessLog(nsLog).some((l) => l.url.startsWith('/blobs/')));
    const blobs = accessLog(nsLog).filter((l) => l.url.startsWith('/blobs/'));
    expect(new Set(blobs.map((l) => l.remote))).toEqual(new Set([nodeIp]));
  }, 120_000);

  it.concurrent('the cache stopped: exit 5; once it is back the re-run finishes', async ({ expect }) => {
    const cache = await ownServe(cacheDir, 'down');
    const { root, state } = await fresh('down');
    await cache.stop();
    const r = await upgradeVia(cache.url, root, state, ['--wait-for-cache', '0']);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/EUPSTREAM/);
    await cache.start();
    const again = await upgradeVia(cache.url, root, state);
    expect(again.code, again.stderr).toBe(0);
  }, 120_000);

  it.concurrent('a manifest signed by an unknown key or with an older serial: refused before any download', async ({ expect }) => {
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
    mkdirSync(b.state, { recursive: true });
    writeFileSync(join(b.state, 'accepted.json'), JSON.stringify({ stackato: { product: 'stackato', serial: 7, digest: 'f'.repeat(64) } }));
    const r2 = await upgrade(b.root, b.state);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(/EROLLBACK/);
    expect(existsSync(join(b.state, 'staging', 'blobs'))).toBe(false);

  }, 120_000);

  it.concurrent('preflight ENOSPACE: a 1 MiB tmpfs as the state dir is refused before any download, naming the staging and how much is short', async ({ expect }) => {
    const d = await mkdtemp(join(tmp, 'nospace-'));
    const state = join(d, 'state');
    mkdirSync(state);
    const m = await runCmd('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'airlock-e2e-nospace', state]);
    expect(m.code, `mount tmpfs (this test needs root): ${m.stderr}`).toBe(0);
    let mounted = true;
    const unmount = async (): Promise<void> => {
      if (!mounted) return;
      const u = await runCmd('umount', [state]);
      if (u.code !== 0) throw new Error(`umount ${state}: ${u.stderr}`);
      mounted = false;
    };
    cleanups.push(unmount);
    // no margin: the shortage is the release's own bytes (~1.7 MiB to stage + the largest work copy)
    writeFileSync(join(d, 'node.yml'), 'disk_margin: 0M\n');
    const r = await upgrade(join(d, 'root'), state, ['--config', join(d, 'node.yml')]);
    try {
      expect(r.code, r.stderr + r.stdout).toBe(4);
      expect(r.stderr).toMatch(/ENOSPACE/);
      expect(r.stderr).toContain(`staging at ${join(state, 'staging')}`);
      expect(r.stderr).toMatch(/need [\d.]+ MiB .*free, short by [\d.]+ (KiB|MiB)/);
      expect(r.stdout + r.stderr).not.toMatch(/downloading/);
      expect(existsSync(join(state, 'staging', 'blobs'))).toBe(false);
      const partial = join(state, 'staging', 'partial');
      expect(existsSync(partial) ? readdirSync(partial) : []).toEqual([]);
      expect(existsSync(join(d, 'root'))).toBe(false);
    } finally {
      await unmount();
    }
  }, 60_000);

  it.concurrent('preflight EMEMORY: a memory floor above free memory (config, core role) is refused before any download', async ({ expect }) => {
    const { root, state } = await fresh('nomem');
    const floorGiB = 2 * Math.ceil(totalmem() / 2 ** 30);
    const config = join(state, '..', 'node.yml');
    writeFileSync(config, `memory_floor_core: ${floorGiB}G\n`);
    const r = await upgrade(root, state, ['--config', config, '--role', 'core']);
    expect(r.code, r.stderr + r.stdout).toBe(4);
    expect(r.stderr).toMatch(/EMEMORY: not enough free memory: need [\d.]+ GiB for roles \[core\], [\d.]+ GiB available, short by/);
    expect(r.stdout + r.stderr).not.toMatch(/downloading/);
    expect(existsSync(join(state, 'staging', 'blobs'))).toBe(false);
    expect(existsSync(root)).toBe(false);
    // the same node without the core role is held to the other floor (default 512 MiB): it passes preflight
    const ok = await upgrade(root, state, ['--config', config, '--download-only']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
  }, 60_000);

  // --- in order, after those: they change the shared cache ---

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

  // last: it puts another product on the shared cache
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
