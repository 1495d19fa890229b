/**
 * Several caches (`--cache A,B`): small answers come from the first cache
 * that gives them; blobs resume on the next. Unit tests of the pool with
 * fake caches, then the real programs: the first cache refusing connections,
 * the second a real `airlock serve`.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AirlockError } from '../../manifests/errors.js';
import { passTrustGate } from '../../manifests/gate.js';
import type { ReleaseManifest } from '../../manifests/types.js';
import { createOutput } from '../../common/output.js';
import { openStore } from '../../storage/index.js';
import { makeTrust, signRelease, type Trust } from '../../scripts/world/index.js';
import { freePorts, httpStatus } from '../../scripts/world/net.js';
import { startServer, type Server } from '../../scripts/world/proc.js';
import { cachePool } from '../../client/caches.js';
import type { CacheClient } from '../../client/remote.js';
import { loadNodeConfig } from '../../client/config.js';
import { AIRLOCK, NODE_CLI, cleanEnv, runCmd } from '../support/cli.js';
import { makeTar, sha256 } from './install/hostile.js';

function fake(base: string, answer: () => Promise<string>): CacheClient {
  return {
    base,
    releases: async () => [],
    manifest: async () => Buffer.from(await answer()),
    blobUrl: (d) => `${base}/blobs/sha256/${d}`,
    fetcher: { fetch: async () => Promise.reject(new Error('unused')) },
    close: () => {},
  };
}

const quiet = () => {
  const lines: string[] = [];
  const sink = { write: (c: string | Uint8Array) => (lines.push(String(c)), true) } as unknown as NodeJS.WritableStream;
  return { out: createOutput(false, { stdout: sink as never, stderr: sink as never }), lines };
};

describe('cachePool', () => {
  const answers: Record<string, () => Promise<string>> = {
    'http://down': () => Promise.reject(new AirlockError('EUPSTREAM', 'http://down: connect ECONNREFUSED')),
    'http://lacks': () => Promise.reject(new AirlockError('ENOTFOUND', 'http://lacks: HTTP 404')),
    'http://bad': () => Promise.reject(new AirlockError('EMANIFEST', 'not JSON')),
    'http://good': async () => 'envelope',
  };
  const pool = (bases: string[], out = quiet().out) => cachePool(bases, out, (b) => fake(b, answers[b]!));

  it('asks the next cache when one is down or lacks the answer, and says so', async () => {
    const q = quiet();
    const r = await pool(['http://down', 'http://lacks', 'http://good'], q.out).ask('the manifest of 1.0', (c) => c.manifest('1.0'));
    expect(r.cache.base).toBe('http://good');
    expect(r.value.toString()).toBe('envelope');
    expect(q.lines.join('')).toMatch(/the manifest of 1\.0 from http:\/\/down failed \(EUPSTREAM.*trying http:\/\/lacks/);
  });

  it('a wrong answer is the answer (not retried elsewhere); all down is the last failure', async () => {
    await expect(pool(['http://bad', 'http://good']).ask('x', (c) => c.manifest('1'))).rejects.toMatchObject({ code: 'EMANIFEST' });
    await expect(pool(['http://down', 'http://lacks']).ask('x', (c) => c.manifest('1'))).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('no cache at all is EUSAGE; the config takes a comma-separated list and refuses a bad entry', () => {
    expect(() => cachePool([], quiet().out)).toThrow(/no cache/);
    expect(loadNodeConfig({ cache: 'http://a:7070/, http://b:7070' }, '/nonexistent').caches).toEqual(['http://a:7070', 'http://b:7070']);
    expect(() => loadNodeConfig({ cache: 'http://a:7070,b:7070' }, '/nonexistent')).toThrow(/got "b:7070"/);
  });
});

describe('airlock-node upgrade --cache DOWN,UP (real programs)', () => {
  let dir: string;
  let trust: Trust;
  let serve: Server;
  let cache: string;
  let tarBytes: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-caches-'));
    trust = makeTrust(join(dir, 'keys'));
    tarBytes = await makeTar([{ name: 'hello.txt', type: 'file', body: Buffer.from('hello from the second cache\n') }]);
    const stamp = (ms: number): string => new Date(Date.now() + ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const payload: ReleaseManifest = {
      type: 'airlock-release',
      spec: 1,
      product: 'demo',
      release: '1.0.0',
      serial: 1,
      issued: stamp(-60_000),
      expires: stamp(86_400_000),
      artifacts: [{ kind: 'file', path: 'components/hello.tar', urls: ['http://upstream.test/hello.tar'], sha256: sha256(tarBytes), size: tarBytes.length, install: { extract: '/opt/hello' } }],
    };
    const verified = passTrustGate({ envelope: signRelease(payload, trust), localRoot: trust.rootJson, clock: { now: new Date() } });
    cache = join(dir, 'cache');
    const store = await openStore({ cacheDir: cache, write: true });
    await store.ingestStream({ sha256: sha256(tarBytes), size: tarBytes.length }, Readable.from([tarBytes]));
    await store.putRelease(verified);
    await store.close();
  });
  afterAll(async () => {
    await serve?.stop();
  });

  it('the first cache refusing connections: the release list, manifest and blob come from the second; the install is the same', async () => {
    const [down, up] = await freePorts(2);
    serve = startServer('airlock-serve-caches', process.execPath, [AIRLOCK, 'serve', '--cache-dir', cache, '--listen', `127.0.0.1:${up}`, '--grace', '1'], join(dir, 'serve.log'), {
      env: cleanEnv(),
    });
    const url = `http://127.0.0.1:${up}`;
    for (let i = 0; i < 100 && (await httpStatus(`${url}/healthz`).catch(() => 0)) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    expect(await httpStatus(`${url}/healthz`).catch(() => 0)).toBe(200);
    const root = join(dir, 'root');
    const r = await runCmd(process.execPath, [
      NODE_CLI,
      'upgrade',
      '--cache',
      `http://127.0.0.1:${down},${url}`,
      '--root',
      root,
      '--state-dir',
      join(dir, 'state'),
      '--trust',
      trust.rootJsonPath,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`from http://127\\.0\\.0\\.1:${down} failed \\(EUPSTREAM`));
    expect(readFileSync(join(root, 'opt', 'hello', 'hello.txt'), 'utf8')).toBe('hello from the second cache\n');
    expect(readdirSync(join(dir, 'state', 'staging', 'partial'))).toEqual([]);
  });
});
