/**
 * Several cache nodes over one bucket and prefix on a REAL Ceph RGW: release
 * records live in the bucket (PREFIX/releases/, PREFIX/accepted/) and each
 * cache_dir's index/ follows them. A release staged through node A is seen
 * by `status` and `serve` of node B, whose cache_dir starts empty; a release
 * staged while B serves appears there within B's poll; a record tampered
 * with in the bucket is skipped with one warning and not served; gc on B
 * keeps A's blobs and collects only unreferenced blobs older than its grace;
 * a deleted index/ is rebuilt from the bucket.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Artifact } from '../../manifests/types.js';
import { makeTrust, signRelease } from '../../scripts/world/keys.js';
import { sha256, startFaultUpstream, type FaultUpstream } from '../support/fault-upstream.js';
import { skipWithoutCeph, startCeph, type Ceph } from '../support/ceph.js';
import { AIRLOCK, cleanEnv, runCli, type Run } from '../support/cli.js';
import { releaseManifest } from '../support/release.js';

const BUCKET = 'airlock';
const PREFIX = 'shared';

let ceph: Ceph;
let up: FaultUpstream;
let dir: string;
let trustPath: string;
let release: (name: string, serial: number, artifacts: Artifact[]) => string;
let art: (path: string, body: Buffer) => Artifact;
const servers: ChildProcess[] = [];

const env = (): NodeJS.ProcessEnv => cleanEnv(ceph.env);
const airlock = (args: string[], config: string): Promise<Run> => runCli(AIRLOCK, [...args, '--config', config], env());
const lastJson = (r: Run): Record<string, unknown> => {
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`no JSON from airlock (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
};

async function keysInBucket(prefix: string): Promise<string[]> {
  const r = await ceph.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

const blobKey = (b: Buffer): string => `${PREFIX}/blobs/sha256/${sha256(b).slice(0, 2)}/${sha256(b)}`;

/** a node's airlock.yml: its own cache_dir, the shared bucket and prefix, a 1 s poll */
function node(name: string): string {
  const file = join(dir, `${name}.yml`);
  writeFileSync(
    file,
    [
      `cache_dir: ${join(dir, `cache-${name}`)}`,
      `trust: ${trustPath}`,
      'storage:',
      '  backend: s3',
      `  s3: {endpoint: "${ceph.endpoint}", bucket: ${BUCKET}, prefix: "${PREFIX}", force_path_style: true, poll: 1s}`,
      '',
    ].join('\n'),
  );
  return file;
}

interface Serving {
  base: string;
  /** everything written so far, stdout and stderr */
  output(): string;
}

function startServe(config: string): Promise<Serving> {
  const child = spawn(process.execPath, [AIRLOCK, 'serve', '--config', config, '--listen', '127.0.0.1:0'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  servers.push(child);
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${seen}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString(); // a line may come in two chunks
      const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve({ base: `http://127.0.0.1:${m[1]}`, output: () => seen });
      }
    });
    child.stderr!.on('data', (d: Buffer) => (seen += d.toString()));
    child.on('exit', (code) => reject(new Error(`airlock serve exited ${code}: ${seen}`)));
  });
}

async function releasesOf(s: Serving): Promise<string[]> {
  const r = await fetch(`${s.base}/releases`);
  expect(r.status).toBe(200);
  const body = (await r.json()) as Array<{ release: string }>;
  return body.map((x) => x.release).sort();
}

/** asks until `check` holds (the poll interval is a config value; no timing is asserted) */
async function eventually(check: () => Promise<boolean>, what: string, limitMs = 60_000): Promise<void> {
  const until = Date.now() + limitMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`not within ${limitMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function stopServers(): Promise<void> {
  for (const s of servers.splice(0)) {
    if (s.exitCode !== null || s.signalCode !== null) continue;
    s.kill('SIGTERM');
    await new Promise((r) => s.once('exit', r));
  }
}

describe.skipIf(skipWithoutCeph)('cache nodes sharing one bucket: release records in the bucket (real Ceph RGW)', () => {
  let a: string;
  let b: string;
  let one: Buffer;
  let two: Buffer;

  beforeAll(async () => {
    if (!existsSync(AIRLOCK)) throw new Error(`${AIRLOCK} is missing: run npm run build (scripts/test.sh does)`);
    [ceph, up] = await Promise.all([startCeph(), startFaultUpstream()]);
    await ceph.createBucket(BUCKET);
    dir = mkdtempSync(join(tmpdir(), 'airlock-s3-shared-'));
    const trust = makeTrust(join(dir, 'keys'));
    trustPath = trust.rootJsonPath;
    art = (path, body) => {
      up.files.set(`/${path}`, { body });
      return { path, kind: 'file', sha256: sha256(body), size: body.length, urls: [`${up.url}/${path}`] };
    };
    release = (name, serial, artifacts) => {
      const m = releaseManifest({ release: name, serial, artifacts });
      const file = join(dir, `release-${name}.json`);
      writeFileSync(file, signRelease(m, trust));
      return file;
    };
    one = randomBytes(70_000);
    two = randomBytes(90_000);
    a = node('a');
    b = node('b');
  }, 150_000);

  afterEach(stopServers);

  afterAll(async () => {
    await stopServers();
    await up?.close();
    await ceph?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a release staged through A is in the bucket, and status of B (empty cache_dir) says it is ready', async () => {
    const st = await airlock(['stage', release('1.0', 1, [art('one.bin', one)]), '--json'], a);
    expect(st.code, st.stderr).toBe(0);
    expect(await keysInBucket(`${PREFIX}/releases/`)).toEqual([`${PREFIX}/releases/1.0.json`]);
    expect(await keysInBucket(`${PREFIX}/accepted/`)).toEqual([`${PREFIX}/accepted/stackato.json`]);
    const record = await ceph.client().send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/accepted/stackato.json` }));
    expect(JSON.parse(await record.Body!.transformToString())).toMatchObject({ product: 'stackato', serial: 1 });

    expect(existsSync(join(dir, 'cache-b'))).toBe(false);
    const status = await airlock(['status', '--json'], b);
    expect(status.code, status.stderr).toBe(0);
    expect(lastJson(status)).toMatchObject({ ok: true, releases: [{ release: '1.0', ready: true }] });
  });

  it('serve from a fresh cache_dir serves the bucket\'s releases; one staged through A meanwhile appears within its poll', async () => {
    const c = node('c');
    const serving = await startServe(c);
    expect(await releasesOf(serving)).toEqual(['1.0']);
    const file = await fetch(`${serving.base}/files/1.0/one.bin`);
    expect(Buffer.from(await file.arrayBuffer())).toEqual(one);

    const st = await airlock(['stage', release('2.0', 2, [art('one.bin', one), art('two.bin', two)]), '--json'], a);
    expect(st.code, st.stderr).toBe(0);
    await eventually(async () => (await releasesOf(serving)).includes('2.0'), 'release 2.0 on the replica');
    const got = await fetch(`${serving.base}/files/2.0/two.bin`);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer())).toEqual(two);
    // the access log is written asynchronously: the line may trail the answer
    await eventually(async () => serving.output().includes('release records synced from the bucket'), 'the sync in the log');
  });

  it('a record tampered with in the bucket is skipped with one warning naming its key, and not served', async () => {
    const good = await ceph.client().send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/releases/2.0.json` }));
    const doc = JSON.parse(await good.Body!.transformToString()) as { payload: string };
    const payload = Buffer.from(doc.payload, 'base64').toString().replace('"release":"2.0"', '"release":"6.6"');
    const tampered = JSON.stringify({ ...doc, payload: Buffer.from(payload).toString('base64') });
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/releases/6.6.json`, Body: tampered }));
    try {
      const d = node('d');
      const status = await airlock(['status', '--json'], d);
      expect(status.code, status.stderr).toBe(0);
      expect((lastJson(status).releases as Array<{ release: string }>).map((r) => r.release).sort()).toEqual(['1.0', '2.0']);
      // --json: one warning event naming the key
      const events = status.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { event?: string; key?: string; message?: string })
        .filter((e) => e.event === 'warning');
      expect(events).toEqual([expect.objectContaining({ key: `s3://${BUCKET}/${PREFIX}/releases/6.6.json` })]);
      // and as text, one line on stderr
      const human = await airlock(['status'], node('d2'));
      expect(human.code, human.stderr).toBe(0);
      expect(human.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^warning: skipped s3://${BUCKET}/${PREFIX}/releases/6\\.6\\.json: `))]);
      expect(human.stdout).not.toContain('6.6');

      const serving = await startServe(node('e'));
      expect(await releasesOf(serving)).toEqual(['1.0', '2.0']);
      const manifest = await fetch(`${serving.base}/releases/6.6/manifest`);
      expect(manifest.status).toBe(404);
      await manifest.arrayBuffer();
      await eventually(async () => serving.output().includes(`s3://${BUCKET}/${PREFIX}/releases/6.6.json`), 'the warning in the log');
    } finally {
      await ceph.client().send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/releases/6.6.json` }));
    }
  });

  it('gc on B keeps the blobs of A\'s releases; a young unreferenced blob stays with --grace 1h and goes with --grace 0', async () => {
    const stray = randomBytes(10_000);
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: blobKey(stray), Body: stray }));
    const graced = await airlock(['gc', '--grace', '1h', '--json'], b);
    expect(graced.code, graced.stderr).toBe(0);
    expect(lastJson(graced)).toMatchObject({
      releases: { kept: ['1.0', '2.0'], removed: [] },
      blobs: { kept: { count: 3 }, deleted: { count: 0 }, young: { count: 1, bytes: stray.length } },
      graceMs: 3_600_000,
    });
    const human = await airlock(['gc', '--grace', '1h'], b);
    expect(human.stdout).toMatch(/1 unreferenced but younger than the 1h grace/);
    expect(await keysInBucket(blobKey(stray))).toEqual([blobKey(stray)]);

    const now = await airlock(['gc', '--grace', '0', '--json'], b);
    expect(now.code, now.stderr).toBe(0);
    expect(lastJson(now)).toMatchObject({ blobs: { kept: { count: 2 }, deleted: { count: 1, bytes: stray.length }, young: { count: 0 } } });
    expect(await keysInBucket(`${PREFIX}/blobs/`)).toEqual([blobKey(one), blobKey(two)].sort());
    const st = await airlock(['status', '--json'], a);
    expect(st.code, st.stderr).toBe(0);
    expect(lastJson(st)).toMatchObject({ ok: true });
  });

  it('deleting index/ entirely: status and serve rebuild it from the bucket', async () => {
    await rm(join(dir, 'cache-a', 'index'), { recursive: true, force: true });
    const st = await airlock(['status', '--json'], a);
    expect(st.code, st.stderr).toBe(0);
    expect(lastJson(st)).toMatchObject({ ok: true, releases: [{ release: '1.0', ready: true }, { release: '2.0', ready: true }] });
    await rm(join(dir, 'cache-a', 'index'), { recursive: true, force: true });
    const serving = await startServe(a);
    expect(await releasesOf(serving)).toEqual(['1.0', '2.0']);
  });

  it('gc --keep on B removes the other release\'s record from the bucket; A follows, and the accepted serial stays', async () => {
    const gc = await airlock(['gc', '--keep', '2.0', '--grace', '0', '--json'], b);
    expect(gc.code, gc.stderr).toBe(0);
    expect(lastJson(gc)).toMatchObject({ releases: { kept: ['2.0'], removed: ['1.0'] } });
    expect(await keysInBucket(`${PREFIX}/releases/`)).toEqual([`${PREFIX}/releases/2.0.json`]);
    const serving = await startServe(a);
    await eventually(async () => (await releasesOf(serving)).join() === '2.0', 'release 1.0 gone from A');
    // no rollback through a gc: serial 1 is below the accepted 2, on any node
    const again = await airlock(['stage', join(dir, 'release-1.0.json')], node('f'));
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/EROLLBACK/);
  });
});
