/**
 * Scaling out: three `airlock serve` replicas over one bucket on a REAL Ceph
 * RGW, behind a REAL haproxy running the shipped example config
 * (docs/examples/haproxy-airlock.cfg). A release of ~300 MiB in 8 files is
 * staged into the bucket; 20 nodes download it at once through haproxy's
 * address (`airlock-node upgrade --download-only`, each into its own state
 * dir); a third of the way through, the replica with the most transfers in
 * flight is SIGKILLed. Every node finishes, each blob resumed with Range on a
 * live replica, and every staged blob hashes to the manifest's sha256 and
 * size. haproxy's health check takes the dead replica out: new requests all
 * land on the other two.
 *
 * Each replica has its own cache_dir, empty at start: the release records
 * live in the bucket beside the blobs, and each replica fills its cache_dir
 * from them (at start, then polling the bucket). The stage runs with a
 * cache_dir of its own too; a release staged while the replicas run appears
 * on all three.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Artifact, ReleaseManifest } from '../../manifests/types.js';
import { generateAptKey } from '../../server/http/apt-signer.js';
import { openStore } from '../../storage/index.js';
import { statePaths } from '../../client/state.js';
import { makeTrust, signRelease, type Trust } from '../../scripts/world/keys.js';
import { freePorts, httpStatus, waitUntil } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { skipWithoutCeph, startCeph, type Ceph } from '../support/ceph.js';
import { AIRLOCK, NODE_CLI, cleanEnv, runCli, runCmd, type Run } from '../support/cli.js';
import { releaseManifest } from '../support/release.js';
import { startFaultUpstream, type FaultUpstream } from '../support/fault-upstream.js';
import { HAPROXY_EXAMPLE, exampleSections, haproxyBinary, skipWithoutHaproxy, startHaproxy, type Haproxy, type ServerStat } from '../support/haproxy.js';

const MiB = 1024 * 1024;
const BUCKET = 'airlock';
const RELEASE = '1.0.0';
const NODES = 20;
const REPLICAS = 3;
// 8 files, 300 MiB and a few odd bytes in all
const SIZES = [24, 28, 32, 36, 40, 44, 48, 48].map((m, i) => m * MiB + 4099 * i);

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let ceph: Ceph;
let up: FaultUpstream;
let dir: string;
let trust: Trust;
let manifest: ReleaseManifest;
let replicas: Server[] = [];
let replicaUrls: string[] = [];
let haproxy: Haproxy;

/** A config over the bucket; the replicas poll it every second (default 5 s) so that the test is quick. */
function writeConfig(file: string, cacheDir: string, extra: string[] = []): void {
  // credentials come from the environment (ceph.env), as in production
  writeFileSync(
    file,
    [
      `cache_dir: ${cacheDir}`,
      `trust: ${trust.rootJsonPath}`,
      'storage:',
      '  backend: s3',
      `  s3: {endpoint: "${ceph.endpoint}", bucket: ${BUCKET}, prefix: "site", region: us-east-1, force_path_style: true, poll: 1s}`,
      ...extra,
      '',
    ].join('\n'),
  );
}

/** Every file's bytes under `d` (a node's state dir: its partials and staged blobs alike). */
async function bytesUnder(d: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(d, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) n += await stat(join(e.parentPath, e.name)).then((s) => s.size, () => 0);
  }
  return n;
}

/** Requests for blobs a replica answered, from its access log (JSON lines). */
function blobRequests(server: Server): number {
  return readFileSync(server.logPath, 'utf8').split('\n').filter((l) => l.includes('/blobs/sha256/')).length;
}

/** `airlock stage` of a signed release into the bucket, from a cache_dir of its own (not a replica's). */
function stage(m: ReleaseManifest): Promise<Run> {
  const envelope = join(dir, `release-${m.release}.json`);
  writeFileSync(envelope, signRelease(m, trust));
  const cfg = join(dir, 'stage.yml');
  writeConfig(cfg, join(dir, 'stage-cache'));
  return runCli(AIRLOCK, ['stage', envelope, '--config', cfg], cleanEnv(ceph.env));
}

/** The releases a replica lists as ready (GET /releases). */
async function readyOn(url: string): Promise<string[]> {
  const r = await fetch(`${url}/releases`);
  if (r.status !== 200) return [];
  return ((await r.json()) as Array<{ release: string; ready: boolean }>).filter((x) => x.ready).map((x) => x.release);
}

describe.skipIf(skipWithoutCeph || skipWithoutHaproxy)('serve replicas over one bucket behind haproxy', () => {
  beforeAll(async () => {
    if (!existsSync(AIRLOCK) || !existsSync(NODE_CLI)) throw new Error('dist/ is missing: run npm run build (scripts/test.sh does)');
    if (!haproxyBinary()) throw new Error('haproxy is not installed: run scripts/setup.sh as root');
    [ceph, up] = await Promise.all([startCeph(), startFaultUpstream()]);
    await ceph.createBucket(BUCKET);
    dir = mkdtempSync(join(tmpdir(), 'airlock-replicas-'));
    trust = makeTrust(join(dir, 'keys'));
    const artifacts: Artifact[] = SIZES.map((size, i) => {
      const body = randomBytes(size);
      const path = `components/part-${i}.bin`;
      up.files.set(`/${path}`, { body });
      return { path, kind: 'file', sha256: sha256(body), size, urls: [`${up.url}/${path}`] };
    });
    manifest = releaseManifest({ release: RELEASE, serial: 1, artifacts });
    const staged = await stage(manifest);
    expect(staged.code, staged.stderr).toBe(0);
    up.files.clear(); // from here on, the bucket is the only copy

    // each replica on a cache_dir of its own, which does not exist yet, all with one apt signing key
    const aptKey = join(dir, 'apt-signing-key.asc');
    writeFileSync(aptKey, await generateAptKey('airlock replicas', new Date()), { mode: 0o600 });
    const ports = await freePorts(REPLICAS);
    replicas = ports.map((port, i) => {
      const cfg = join(dir, `replica-${i + 1}.yml`);
      writeConfig(cfg, join(dir, `replica-${i + 1}`), [`apt_signing_key: ${aptKey}`]);
      return startServer(`airlock-serve-${i + 1}`, process.execPath, [AIRLOCK, 'serve', '--config', cfg, '--listen', `127.0.0.1:${port}`, '--grace', '1'], join(dir, `serve-${i + 1}.log`), {
        env: cleanEnv(ceph.env),
      });
    });
    replicaUrls = ports.map((p) => `http://127.0.0.1:${p}`);
    await Promise.all(replicas.map((r, i) => waitUntil(r.name, async () => (await httpStatus(`${replicaUrls[i]}/healthz`)) === 200, r.exited, 30_000)));
    haproxy = await startHaproxy(ports);
  }, 150_000);

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all(replicas.map((r) => r.stop('SIGKILL')));
    await up?.close();
    await ceph?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('haproxy runs the shipped example: its defaults, frontend and backend lines, only the bind address and servers replaced', async () => {
    const example = exampleSections().split('\n');
    const running = haproxy.config.split('\n');
    const changed = /^\s+(bind|server)\s/;
    expect(example.filter((l) => !changed.test(l)).every((l) => running.includes(l))).toBe(true);
    expect(running.filter((l) => /^\s+server\s/.test(l))).toHaveLength(REPLICAS);
    // the shipped file is a valid haproxy config as it stands
    const check = await runCmd(haproxyBinary()!, ['-c', '-f', HAPROXY_EXAMPLE]);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    const servers = await haproxy.servers();
    expect(servers.map((s) => [s.name, s.status.split(' ')[0]])).toEqual([
      ['replica1', 'UP'],
      ['replica2', 'UP'],
      ['replica3', 'UP'],
    ]);
  });

  it('each replica, on an empty cache_dir of its own, serves the release staged into the bucket, and one staged while they run', async () => {
    for (const url of replicaUrls) expect(await readyOn(url), url).toEqual([RELEASE]);
    // apt_signing_key names one key for all: apt's signatures verify whichever replica answers
    const keys = await Promise.all(replicaUrls.map(async (url) => Buffer.from(await (await fetch(`${url}/apt/airlock.asc`)).arrayBuffer()).toString()));
    expect(keys[0]).toContain('BEGIN PGP PUBLIC KEY BLOCK');
    expect(new Set(keys).size).toBe(1);
    const body = randomBytes(300_000);
    up.files.set('/components/hotfix.bin', { body });
    const hotfix = releaseManifest({ release: '1.0.1', serial: 2, artifacts: [{ path: 'components/hotfix.bin', kind: 'file', sha256: sha256(body), size: body.length, urls: [`${up.url}/components/hotfix.bin`] }] });
    const staged = await stage(hotfix);
    expect(staged.code, staged.stderr).toBe(0);
    up.files.clear();
    // each replica polls the bucket: the new release shows up on every one of them, ready, its manifest byte for byte
    const envelope = readFileSync(join(dir, 'release-1.0.1.json'));
    for (const url of replicaUrls) {
      await waitUntil(`1.0.1 on ${url}`, async () => (await readyOn(url)).includes('1.0.1'), () => null, 30_000);
      const m = await fetch(`${url}/releases/1.0.1/manifest`);
      expect(Buffer.from(await m.arrayBuffer()).equals(envelope), url).toBe(true);
      const f = await fetch(`${url}/files/1.0.1/components/hotfix.bin`);
      expect(sha256(new Uint8Array(await f.arrayBuffer())), url).toBe(sha256(body));
    }
  });

  it(`${NODES} nodes download through haproxy; a replica SIGKILLed a third of the way; every node finishes with verified bytes`, async () => {
    const releaseBytes = SIZES.reduce((a, b) => a + b, 0);
    const states = Array.from({ length: NODES }, (_, i) => join(dir, `node-${i}`));
    const nodes = states.map(
      (state) =>
        new Promise<Run>((done) => {
          // niced: on a site the nodes are other machines; here 20 of them starting at once on the
          // test machine's cores would starve the replicas until haproxy's health checks give up on them
          const child = spawn(
            'nice',
            ['-n', '10', process.execPath, NODE_CLI, 'upgrade', '--cache', haproxy.url, '--release', RELEASE, '--download-only', '--trust', trust.rootJsonPath, '--state-dir', state, '--root', join(state, 'root'), '--json'],
            { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
          );
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('exit', (code) => done({ code: code ?? 1, stdout, stderr }));
        }),
    );
    let finished = 0;
    void Promise.all(nodes.map((p) => p.then(() => finished++)));

    // a third of all the bytes on the nodes' disks, and the busiest replica mid-transfer
    let held = 0;
    let busiest: ServerStat | null = null;
    const deadline = Date.now() + 120_000;
    for (;;) {
      held = (await Promise.all(states.map(bytesUnder))).reduce((a, b) => a + b, 0);
      if (held >= (NODES * releaseBytes) / 3) {
        busiest = (await haproxy.servers()).filter((s) => s.current > 0).sort((a, b) => b.current - a.current)[0] ?? null;
        if (busiest) break;
      }
      if (finished === NODES || Date.now() > deadline) throw new Error(`no replica was sending when a third of the bytes were held (${held} of ${NODES * releaseBytes}, ${finished} nodes done)`);
      await sleep(100);
    }
    const victimIndex = Number(busiest.name.replace('replica', '')) - 1;
    const victim = replicas[victimIndex]!;
    await victim.stop('SIGKILL');
    const servedBeforeKill = blobRequests(victim);

    const runs = await Promise.all(nodes);
    // on failure: the node's warnings and its last line (the error), haproxy's view of the servers and its answers other than 200/206
    const told = async (r: Run): Promise<string> =>
      [
        r.stderr,
        ...r.stdout.trim().split('\n').filter((l, i, all) => l.includes('"warning"') || i === all.length - 1),
        `haproxy: ${JSON.stringify(await haproxy.servers())}`,
        ...readFileSync(haproxy.logPath, 'utf8').split('\n').filter((l) => l.includes('airlock_replicas') && !/ 20[06] /.test(l)).slice(-20),
      ].join('\n');
    for (const [i, r] of runs.entries()) if (r.code !== 0) expect.fail(`node ${i} exit ${r.code}: ${await told(r)}`);

    // the kill cut downloads in flight: they went on from their partials (Range) on a live replica
    const retried = runs.filter((r) => /"event":"warning","message":"[^"]*retry \d+ after/.test(r.stdout)).length;
    expect(retried, 'nodes that retried after the kill').toBeGreaterThan(0);
    expect(busiest.current).toBeGreaterThan(0);
    expect(servedBeforeKill).toBeGreaterThan(0);
    const alive = replicas.filter((_, i) => i !== victimIndex);
    for (const r of alive) expect(blobRequests(r), `${r.name} served blobs`).toBeGreaterThan(0);

    // every staged blob is the manifest's bytes
    for (const state of states) {
      const store = await openStore({ cacheDir: statePaths(state).staging });
      try {
        for (const a of manifest.artifacts) {
          const h = createHash('sha256');
          let size = 0;
          for await (const chunk of await store.read(a.sha256)) {
            h.update(chunk as Buffer);
            size += (chunk as Buffer).length;
          }
          expect({ node: state, path: a.path, sha256: h.digest('hex'), size }).toEqual({ node: state, path: a.path, sha256: a.sha256, size: a.size });
        }
      } finally {
        await store.close();
      }
    }

    // haproxy's health check takes the dead replica out: new requests go to the live ones only
    await waitUntil(
      `haproxy marking ${busiest.name} DOWN`,
      async () => (await haproxy.servers()).find((s) => s.name === busiest.name)?.status.startsWith('DOWN') === true,
      () => null,
      30_000,
    );
    const before = await haproxy.servers();
    const [first] = manifest.artifacts;
    for (let i = 0; i < 12; i++) {
      expect(await httpStatus(`${haproxy.url}/healthz`)).toBe(200);
      const r = await fetch(`${haproxy.url}/blobs/sha256/${first!.sha256}`, { headers: { range: 'bytes=1000-1999' } });
      expect(r.status).toBe(206);
      expect((await r.arrayBuffer()).byteLength).toBe(1000);
    }
    const after = await haproxy.servers();
    const total = (list: ServerStat[], name: string): number => list.find((s) => s.name === name)!.total;
    expect(total(after, busiest.name)).toBe(total(before, busiest.name));
    for (const r of alive) {
      const name = `replica${replicas.indexOf(r) + 1}`;
      expect(total(after, name), name).toBeGreaterThan(total(before, name));
    }
  }, 300_000);
});
