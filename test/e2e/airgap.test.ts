/**
 * The air gap, end to end with the real thing: `airlock stage` pulls a
 * release from the real world (nginx, docker-registry, through squid),
 * `airlock export --split` writes volumes, the world is stopped (no network
 * from here on), `airlock import` fills an EMPTY cache, `airlock status`
 * says ready, and `airlock-node upgrade` installs from `airlock serve` of
 * that cache with the real dpkg.
 */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTrust, releasePayload, signRelease, startWorld, type Trust, type World } from '../../scripts/world/index.js';
import { freePorts, httpStatus } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { writeFileSync } from 'node:fs';
import { AIRLOCK, NODE_CLI, cleanEnv, runCli as run } from '../support/cli.js';

const pexec = promisify(execFile);

describe('air gap round trip (e2e, real world)', () => {
  let world: World | null = null;
  let tmp: string;
  let trust: Trust;
  let serve: Server | null = null;
  const RELEASE = '2.0.0';

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'airlock-airgap-e2e-'));
    world = await startWorld();
    trust = makeTrust(join(tmp, 'keys'));
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    await world?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('stage → export (volumes) → world stopped → import into an empty cache → status ready → node upgrade', async () => {
    const w = world!;
    const connected = join(tmp, 'connected-cache');
    const envPath = join(tmp, 'envelope.json');
    writeFileSync(envPath, signRelease(releasePayload(w, { product: 'stackato', release: RELEASE, serial: 3 }), trust));
    const staged = await run(AIRLOCK, [
      'stage', envPath, '--cache-dir', connected, '--trust', trust.rootJsonPath,
      '--proxy', w.proxyUrl, '--insecure-registry', w.registryAddress,
    ]);
    expect(staged.code, staged.stderr + staged.stdout).toBe(0);

    const bundle = join(tmp, 'media', 'release.tar');
    await pexec('mkdir', ['-p', join(tmp, 'media')]);
    const ex = await run(AIRLOCK, ['export', RELEASE, '--out', bundle, '--split', '1M', '--cache-dir', connected, '--trust', trust.rootJsonPath, '--json']);
    expect(ex.code, ex.stderr + ex.stdout).toBe(0);
    const exported = JSON.parse(ex.stdout.trim().split('\n').pop()!) as { volumes: Array<{ path: string }>; blobs: number };
    expect(exported.volumes.length).toBeGreaterThan(1);
    // every volume is checkable by the stock tool on the other side
    const names = readdirSync(join(tmp, 'media')).filter((n) => n.endsWith('.sha256'));
    expect(names.length).toBe(exported.volumes.length);
    await pexec('sha256sum', ['-c', ...names], { cwd: join(tmp, 'media') });

    // the air gap: no upstream, no proxy from here on
    await w.stop();
    world = null;

    const gapped = join(tmp, 'gapped-cache');
    const im = await run(AIRLOCK, ['import', bundle, '--cache-dir', gapped, '--trust', trust.rootJsonPath]);
    expect(im.code, im.stderr + im.stdout).toBe(0);
    expect(im.stdout).toMatch(new RegExp(`imported stackato ${RELEASE.replace(/\./g, '\\.')}`));
    const st = await run(AIRLOCK, ['status', RELEASE, '--cache-dir', gapped]);
    expect(st.code, st.stderr + st.stdout).toBe(0);
    // a second import reads past what is there
    const again = await run(AIRLOCK, ['import', `${bundle}.000`, '--cache-dir', gapped, '--trust', trust.rootJsonPath, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout.trim().split('\n').pop()!).blobs.imported).toBe(0);

    // the nodes upgrade from it
    const [port] = await freePorts(1);
    const cacheUrl = `http://127.0.0.1:${port}`;
    serve = startServer('airlock-serve', process.execPath, [AIRLOCK, 'serve', '--cache-dir', gapped, '--listen', `127.0.0.1:${port}`], join(tmp, 'serve.log'), {
      env: cleanEnv(),
    });
    const end = Date.now() + 20_000;
    while ((await httpStatus(`${cacheUrl}/healthz`).catch(() => 0)) !== 200 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    const root = join(tmp, 'node-root');
    const up = await run(NODE_CLI, ['upgrade', '--cache', cacheUrl, '--root', root, '--state-dir', join(tmp, 'node-state'), '--trust', trust.rootJsonPath]);
    expect(up.code, up.stderr + up.stdout).toBe(0);
    expect(up.stdout).toMatch(new RegExp(`installed ${RELEASE.replace(/\./g, '\\.')}`));
    const dpkg = await pexec('dpkg', [`--root=${root}`, '-s', 'hello']);
    expect(dpkg.stdout).toMatch(/install ok installed/);
  }, 240_000);
});
