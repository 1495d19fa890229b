/**
 * Blobs on Ceph: the built `airlock` with `storage.backend: s3` against a REAL
 * Ceph RGW (one cluster for this file) and the in-process fault upstream.
 * stage puts verified blobs in the bucket (nothing under cache_dir/blobs),
 * a re-run fetches nothing; status is ready; serve answers GET, HEAD and
 * ranges of a blob and a file streamed from RGW; verify re-hashes from RGW and
 * reports an object overwritten behind its back as corrupt (quarantined in
 * the bucket); the commands that still need local blobs refuse in one line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Artifact, ReleaseManifest } from '../../manifests/types.js';
import { makeTrust, signRelease } from '../../scripts/world/keys.js';
import { sha256, startFaultUpstream, type FaultUpstream } from '../support/fault-upstream.js';
import { skipWithoutCeph, startCeph, type Ceph } from '../support/ceph.js';
import { AIRLOCK, cleanEnv, runCli, type Run } from '../support/cli.js';

const BUCKET = 'airlock';
const PREFIX = 'site-a';

let ceph: Ceph;
let up: FaultUpstream;
let dir: string;
let cfg: string;
let envelope: string;
let small: Buffer;
let big: Buffer;
let serve: ChildProcess | null = null;

const env = (): NodeJS.ProcessEnv => cleanEnv(ceph.env);
const airlock = (args: string[]): Promise<Run> => runCli(AIRLOCK, [...args, '--config', cfg], env());
const lastJson = (r: Run): Record<string, unknown> => {
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`no JSON from airlock (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
};

async function keysInBucket(): Promise<string[]> {
  const r = await ceph.client().send(new ListObjectsV2Command({ Bucket: BUCKET }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

function startServe(): Promise<number> {
  const child = spawn(process.execPath, [AIRLOCK, 'serve', '--config', cfg, '--listen', '127.0.0.1:0'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  serve = child;
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${lines.join('\n')}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      lines.push(d.toString());
      const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(d.toString());
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
    child.on('exit', (code) => reject(new Error(`airlock serve exited ${code}: ${lines.join('\n')}`)));
  });
}

describe.skipIf(skipWithoutCeph)('airlock with blobs on a real Ceph RGW (storage.backend: s3)', () => {
  beforeAll(async () => {
    if (!existsSync(AIRLOCK)) throw new Error(`${AIRLOCK} is missing: run npm run build (scripts/test.sh does)`);
    [ceph, up] = await Promise.all([startCeph(), startFaultUpstream()]);
    await ceph.createBucket(BUCKET);
    dir = mkdtempSync(join(tmpdir(), 'airlock-s3-e2e-'));
    const trust = makeTrust(join(dir, 'keys'));
    small = randomBytes(100_000);
    big = randomBytes(20 * 1024 * 1024 + 777); // over the 8 MiB part size: a multipart upload
    const art = (path: string, body: Buffer): Artifact => {
      up.files.set(`/${path}`, { body });
      return { path, kind: 'file', sha256: sha256(body), size: body.length, urls: [`${up.url}/${path}`] };
    };
    const now = Date.now();
    const m: ReleaseManifest = {
      type: 'airlock-release',
      spec: 1,
      product: 'stackato',
      release: '3.6.1',
      serial: 1,
      issued: new Date(now - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      expires: new Date(now + 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'),
      artifacts: [art('components/small.bin', small), art('components/router.tgz', big)],
    };
    envelope = join(dir, 'release.json');
    writeFileSync(envelope, signRelease(m, trust));
    cfg = join(dir, 'airlock.yml');
    // no credentials here: the CLI reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from its environment
    writeFileSync(
      cfg,
      [
        `cache_dir: ${join(dir, 'cache')}`,
        `trust: ${trust.rootJsonPath}`,
        'storage:',
        '  backend: s3',
        `  s3: {endpoint: "${ceph.endpoint}", bucket: ${BUCKET}, prefix: "${PREFIX}", region: us-east-1, force_path_style: true}`,
        '',
      ].join('\n'),
    );
  }, 150_000);

  afterAll(async () => {
    if (serve && serve.exitCode === null) {
      serve.kill('SIGKILL');
      await new Promise((r) => serve!.once('exit', r));
    }
    await up?.close();
    await ceph?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('stage puts verified blobs in the bucket, none under cache_dir; a re-run fetches nothing; status is ready', async () => {
    const first = await airlock(['stage', envelope, '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(lastJson(first)).toMatchObject({ fetched: 2 });
    expect(await keysInBucket()).toEqual(
      [small, big].map((b) => `${PREFIX}/blobs/sha256/${sha256(b).slice(0, 2)}/${sha256(b)}`).sort(),
    );
    const got = await ceph.client().send(new GetObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/blobs/sha256/${sha256(big).slice(0, 2)}/${sha256(big)}` }));
    expect(sha256(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha256(big));
    // local scratch only: no blob files, the partials gone
    expect(existsSync(join(dir, 'cache', 'blobs'))).toBe(false);
    expect(readdirSync(join(dir, 'cache', 'partial'))).toEqual([]);

    const requests = up.requests.length;
    const again = await airlock(['stage', envelope, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(lastJson(again)).toMatchObject({ fetched: 0 });
    expect(up.requests.length).toBe(requests);

    const status = await airlock(['status', '3.6.1', '--json']);
    expect(status.code, status.stderr).toBe(0);
    expect(lastJson(status)).toMatchObject({ ok: true, status: { ready: true, files: { total: 2, present: 2, missing: 0 } } });
  });

  it('serve answers GET, HEAD and ranges of a blob and a file, streamed from RGW', async () => {
    const port = await startServe();
    const base = `http://127.0.0.1:${port}`;
    const hex = sha256(big);
    const whole = await fetch(`${base}/blobs/sha256/${hex}`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(big.length));
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(hex);

    const head = await fetch(`${base}/blobs/sha256/${hex}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(big.length));
    expect(head.headers.get('etag')).toContain(hex);

    const start = 9 * 1024 * 1024 - 5;
    const range = await fetch(`${base}/blobs/sha256/${hex}`, { headers: { range: `bytes=${start}-${start + 99}` } });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes ${start}-${start + 99}/${big.length}`);
    expect(Buffer.from(await range.arrayBuffer())).toEqual(big.subarray(start, start + 100));

    const past = await fetch(`${base}/blobs/sha256/${hex}`, { headers: { range: `bytes=${big.length}-` } });
    expect(past.status).toBe(416);
    await past.arrayBuffer();

    const file = await fetch(`${base}/files/3.6.1/components/small.bin`);
    expect(file.status).toBe(200);
    expect(Buffer.from(await file.arrayBuffer())).toEqual(small);
    const fileRange = await fetch(`${base}/files/3.6.1/components/router.tgz`, { headers: { range: 'bytes=-10' } });
    expect(fileRange.status).toBe(206);
    expect(Buffer.from(await fileRange.arrayBuffer())).toEqual(big.subarray(big.length - 10));

    const absent = await fetch(`${base}/blobs/sha256/${sha256(Buffer.from('not staged'))}`);
    expect(absent.status).toBe(404);
    await absent.arrayBuffer();
    serve!.kill('SIGTERM');
    await new Promise((r) => serve!.once('exit', r));
  });

  it('verify re-hashes from RGW: clean, then an object overwritten in the bucket is corrupt, quarantined, and status says missing', async () => {
    const clean = await airlock(['verify', '--json']);
    expect(clean.code, clean.stderr).toBe(0);
    expect(lastJson(clean)).toMatchObject({ ok: true, checked: 2, intact: 2 });

    const hex = sha256(small);
    const forged = Buffer.from(small);
    forged[500] ^= 0xff;
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/blobs/sha256/${hex.slice(0, 2)}/${hex}`, Body: forged }));
    const bad = await airlock(['verify', '--json']);
    expect(bad.code, bad.stderr).toBe(3);
    const report = lastJson(bad);
    expect(report).toMatchObject({ ok: false, checked: 2, intact: 1, corrupt: [{ sha256: hex, foundSha256: sha256(forged), foundSize: small.length }] });
    expect((report.corrupt as Array<{ quarantinedAs: string }>)[0]!.quarantinedAs).toMatch(new RegExp(`^s3://${BUCKET}/${PREFIX}/quarantine/${hex}\\.`));
    expect((await keysInBucket()).some((k) => k.startsWith(`${PREFIX}/quarantine/${hex}.`))).toBe(true);

    const status = await airlock(['status', '3.6.1', '--json']);
    expect(status.code).toBe(1);
    expect(lastJson(status)).toMatchObject({ ok: false, status: { ready: false, missing: [{ sha256: hex }] } });

    // stage fetches it again, verified
    const restage = await airlock(['stage', envelope, '--json']);
    expect(restage.code, restage.stderr).toBe(0);
    expect(lastJson(restage)).toMatchObject({ fetched: 1 });
    expect((await airlock(['status', '3.6.1'])).code).toBe(0);
  });

  it('export, gc and relocate refuse a bucket in one line (exit 2)', async () => {
    for (const args of [['export', '3.6.1', '--out', join(dir, 'b.tar')], ['gc'], ['relocate', join(dir, 'elsewhere')]]) {
      const r = await airlock(args);
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/does not work with blobs in S3 yet/);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});
