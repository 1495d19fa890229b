/**
 * airlock-node's image installs against REAL engines: a private containerd
 * and dockerd (vfs storage, no bridge, no iptables, unix sockets in a temp
 * dir; started once for the file), a cache served in-process on loopback
 * holding one signed release with one image (built with umoci). The node is
 * the built CLI, as an operator runs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrustedRoot, verifyRelease, type ReleaseManifest } from '../../../manifests/index.js';
import { openStore, type Store } from '../../../storage/index.js';
import { createServer, listenApp, type Listening } from '../../../server/http/index.js';
import { makeTrust, signRelease, type Trust } from '../../../scripts/world/keys.js';
import { builtOciLayout, sha256File } from '../../../scripts/world/fixtures.js';
import { cleanEnv, NODE_CLI, runCli, runCmd } from '../../support/cli.js';

const IMAGE = 'registry.upstream.test:5000/demo/app:1.0';
const SBIN = '/usr/sbin:/sbin:/usr/bin:/bin';
const tools = ['dockerd', 'containerd', 'ctr', 'docker'];
const have = (t: string): boolean => [...(process.env.PATH ?? '').split(':'), ...SBIN.split(':')].some((d) => existsSync(join(d, t)));
const missing = tools.filter((t) => !have(t));
if (missing.length > 0 && process.env.CI === 'true') {
  throw new Error(`${missing.join(', ')} not installed (CI=true makes this a failure): run scripts/setup.sh (packages docker.io, containerd)`);
}

interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

let dir: string;
let engines: string;
let dockerSock: string;
let ctrdSock: string;
const children: ChildProcess[] = [];
let trust: Trust;
let store: Store;
let listening: Listening;
let manifestDigest: string;
let configDigest: string;

function startDaemon(cmd: string, args: string[], log: string): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${process.env.PATH}:${SBIN}` } });
  let text = '';
  const keep = (d: Buffer): void => void (text = (text + d.toString()).slice(-8000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('exit', () => void writeFile(log, text).catch(() => {}));
  children.push(child);
  return child;
}

async function until(what: string, ok: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what} did not come up within ${ms} ms (logs in ${engines})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const docker = (...args: string[]) => runCmd('docker', ['-H', `unix://${dockerSock}`, ...args]);
const ctr = (...args: string[]) => runCmd('ctr', ['-a', ctrdSock, ...args]);

describe.skipIf(missing.length > 0)('images into real engines', () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'airlock-engines-'));
    engines = join(dir, 'e'); // short: unix socket paths have a 108-byte limit
    await mkdir(join(engines, 'ctrd'), { recursive: true });
    ctrdSock = join(engines, 'ctrd', 'c.sock');
    dockerSock = join(engines, 'd.sock');
    startDaemon('containerd', ['--root', join(engines, 'ctrd', 'root'), '--state', join(engines, 'ctrd', 'state'), '--address', ctrdSock], join(engines, 'containerd.log'));
    await until('containerd', async () => (await ctr('version')).code === 0);
    startDaemon(
      'dockerd',
      ['--data-root', join(engines, 'data'), '--exec-root', join(engines, 'x'), '--pidfile', join(engines, 'docker.pid'), '-H', `unix://${dockerSock}`,
        '--iptables=false', '--ip6tables=false', '--bridge=none', '--storage-driver', 'vfs', '--containerd', ctrdSock],
      join(engines, 'dockerd.log'),
    );

    // one signed release holding one image, in a store served on loopback
    trust = makeTrust(join(dir, 'keys'));
    const layout = await builtOciLayout();
    const blob = (d: string): string => join(layout, 'blobs', 'sha256', d.replace(/^sha256:/, ''));
    const top = (JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: OciDescriptor[] }).manifests[0]!;
    const m = JSON.parse(readFileSync(blob(top.digest), 'utf8')) as { config: OciDescriptor; layers: OciDescriptor[] };
    manifestDigest = top.digest;
    configDigest = m.config.digest;
    const now = new Date();
    const iso = (t: number): string => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const payload: ReleaseManifest = {
      type: 'airlock-release', spec: 1, product: 'stackato', release: '1.0.0', serial: 1,
      issued: iso(now.getTime() - 3_600_000), expires: iso(now.getTime() + 30 * 86_400_000),
      artifacts: [{
        path: 'images/demo/app', kind: 'oci-image', image: IMAGE, sha256: top.digest.slice(7), size: top.size, mediaType: top.mediaType,
        blobs: [m.config, ...m.layers].map((b) => ({ sha256: b.digest.slice(7), size: b.size })),
      }],
    };
    const verified = verifyRelease(signRelease(payload, trust), { root: loadTrustedRoot(await readFile(trust.rootJsonPath), now), now });
    store = await openStore({ cacheDir: join(dir, 'cache'), write: true });
    for (const d of [top, m.config, ...m.layers].map((b) => b.digest)) {
      await store.ingestStream(await sha256File(blob(d)), createReadStream(blob(d)));
    }
    await store.putRelease(verified);
    listening = await listenApp(createServer({ adminToken: null, passthrough: false }, { store }), { listen: '127.0.0.1:0' });
    await until('dockerd', async () => (await docker('info')).code === 0);
  }, 90_000);

  afterAll(async () => {
    await listening?.close(1000);
    await store?.close();
    for (const c of children.reverse()) {
      if (c.exitCode !== null) continue;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
      if (c.exitCode === null) c.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }, 60_000);

  /** `airlock-node upgrade` of release 1.0.0 into a fresh root and state dir */
  async function upgrade(name: string, env: NodeJS.ProcessEnv, configYaml = ''): Promise<{ root: string; code: number; stdout: string; stderr: string }> {
    const root = join(dir, name, 'root');
    await mkdir(root, { recursive: true });
    const cfg = join(dir, name, 'airlock-node.yml');
    await writeFile(cfg, configYaml);
    const r = await runCli(
      NODE_CLI,
      ['upgrade', '--config', cfg, '--cache', listening.url, '--trust', trust.rootJsonPath, '--root', root, '--state-dir', join(dir, name, 'state')],
      cleanEnv({ PATH: `${process.env.PATH}:${SBIN}`, ...env }),
    );
    return { root, ...r };
  }

  it('with DOCKER_HOST at a real dockerd, upgrade docker-loads the image under its signed tag and config digest, and writes no layout', async () => {
    const r = await upgrade('docker', { DOCKER_HOST: `unix://${dockerSock}` });
    expect(r.code, r.stderr).toBe(0);
    const inspect = await docker('image', 'inspect', IMAGE, '--format', '{{json .}}');
    expect(inspect.code, inspect.stderr).toBe(0);
    const img = JSON.parse(inspect.stdout) as { Id: string; RepoTags: string[]; Config: { Env: string[] } };
    // Docker's image id is the digest of the config, which the signed manifest names
    expect(img.Id).toBe(configDigest);
    expect(img.RepoTags).toContain(IMAGE);
    expect(img.Config.Env).toContain('FOO=bar');
    expect(existsSync(join(r.root, 'var', 'lib', 'airlock', 'images'))).toBe(false);
  }, 60_000);

  it('with no engine answering, the same upgrade writes an OCI layout under the root instead', async () => {
    const r = await upgrade('layout', { DOCKER_HOST: `unix://${join(engines, 'nobody.sock')}` });
    expect(r.code, r.stderr).toBe(0);
    const index = JSON.parse(await readFile(join(r.root, 'var/lib/airlock/images/registry.upstream.test_5000/demo/app/index.json'), 'utf8'));
    expect(index.manifests.map((x: { digest: string }) => x.digest)).toEqual([manifestDigest]);
  }, 60_000);

  it('installers.oci-image = "ctr … images import {archive}" imports into a real containerd under the signed name and manifest digest', async () => {
    const cmd = `ctr --address ${ctrdSock} --namespace airlock images import --snapshotter native {archive}`;
    const r = await upgrade('containerd', { DOCKER_HOST: `unix://${join(engines, 'nobody.sock')}` }, `installers:\n  oci-image: ${cmd}\n`);
    expect(r.code, r.stderr).toBe(0);
    const ls = await ctr('--namespace', 'airlock', 'images', 'ls');
    expect(ls.code, ls.stderr).toBe(0);
    const line = ls.stdout.split('\n').find((l) => l.startsWith(`${IMAGE} `));
    expect(line, ls.stdout).toContain(manifestDigest);
    // unpacked for the native snapshotter: ready to run
    const check = await ctr('--namespace', 'airlock', 'images', 'check');
    expect(check.stdout).toMatch(new RegExp(`${IMAGE.replace(/[.:/]/g, '\\$&')}\\s.*complete`));
  }, 60_000);

  it('containerd pulls the image from the cache as a registry mirror (certs.d/HOST/hosts.toml → the cache /v2/)', async () => {
    const certs = join(dir, 'certs.d');
    await mkdir(join(certs, 'registry.upstream.test:5000'), { recursive: true });
    await writeFile(
      join(certs, 'registry.upstream.test:5000', 'hosts.toml'),
      `server = "${listening.url}"\n\n[host."${listening.url}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
    const pull = await ctr('--namespace', 'mirror', 'images', 'pull', '--hosts-dir', certs, '--snapshotter', 'native', IMAGE);
    expect(pull.code, pull.stderr + pull.stdout).toBe(0);
    const ls = await ctr('--namespace', 'mirror', 'images', 'ls');
    expect(ls.stdout.split('\n').find((l) => l.startsWith(`${IMAGE} `)), ls.stdout).toContain(manifestDigest);
  }, 60_000);
});
