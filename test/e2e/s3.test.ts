/**
 * Blobs on Ceph: the built `airlock` with `storage.backend: s3` against a REAL
 * Ceph RGW (one cluster for this file) and the in-process fault upstream.
 * stage puts verified blobs in the bucket (nothing under cache_dir/blobs),
 * a re-run, or a second cache_dir on the same bucket and prefix, fetches
 * nothing; status is ready; serve answers GET, HEAD and
 * ranges of a blob and a file streamed from RGW, and a client that goes away
 * mid-blob leaves no socket to RGW behind; verify re-hashes from RGW and
 * reports an object overwritten behind its back as corrupt (quarantined in
 * the bucket); export from the bucket and import into another prefix; gc
 * deletes the blobs no kept release needs and the bucket's quarantine;
 * relocate NEW_DIR says in one line that --to-fs is the way (test/e2e/relocate-s3.test.ts moves the blobs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Artifact } from '../../manifests/types.js';
import { createOutput } from '../../common/output.js';
import { loadConfig } from '../../server/config.js';
import { stageRelease } from '../../server/stage/stage.js';
import { makeTrust, signRelease } from '../../scripts/world/keys.js';
import { sha256, startFaultUpstream, type FaultUpstream } from '../support/fault-upstream.js';
import { skipWithoutCeph, startCeph, type Ceph } from '../support/ceph.js';
import { AIRLOCK, cleanEnv, runCli, type Run } from '../support/cli.js';
import { releaseManifest } from '../support/release.js';

const BUCKET = 'airlock';
const PREFIX = 'site-a';

let ceph: Ceph;
let up: FaultUpstream;
let dir: string;
let cfg: string;
let envelope: string;
let trustPath: string;
let release: (name: string, serial: number, artifacts: Artifact[]) => string;
let art: (path: string, body: Buffer) => Artifact;
let small: Buffer;
let big: Buffer;
let serve: ChildProcess | null = null;

const env = (): NodeJS.ProcessEnv => cleanEnv(ceph.env);
const airlock = (args: string[], config = cfg): Promise<Run> => runCli(AIRLOCK, [...args, '--config', config], env());
const lastJson = (r: Run): Record<string, unknown> => {
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`no JSON from airlock (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
};

async function keysInBucket(prefix = ''): Promise<string[]> {
  const r = await ceph.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!).sort();
}

const blobKey = (b: Buffer, prefix = PREFIX): string => `${prefix}/blobs/sha256/${sha256(b).slice(0, 2)}/${sha256(b)}`;

function writeConfig(file: string, cacheDir: string, trustPath: string, prefix: string): void {
  // no credentials here: the CLI reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from its environment
  writeFileSync(
    file,
    [
      `cache_dir: ${cacheDir}`,
      `trust: ${trustPath}`,
      'storage:',
      '  backend: s3',
      `  s3: {endpoint: "${ceph.endpoint}", bucket: ${BUCKET}, prefix: "${prefix}", region: us-east-1, force_path_style: true}`,
      '',
    ].join('\n'),
  );
}

/** TCP connections established from process `pid` to the gateway's port (from /proc: its socket descriptors, matched in net/tcp) */
function gatewaySockets(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const port = Number(new URL(ceph.endpoint).port).toString(16).toUpperCase().padStart(4, '0');
  return readFileSync(`/proc/${pid}/net/tcp`, 'utf8')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length > 9 && f[2]!.endsWith(`:${port}`) && f[3] === '01' && inodes.has(f[9]!)).length;
}

function startServe(): Promise<number> {
  const child = spawn(process.execPath, [AIRLOCK, 'serve', '--config', cfg, '--listen', '127.0.0.1:0'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  serve = child;
  const lines: string[] = [];
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${lines.join('\n')}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      lines.push(d.toString());
      seen += d.toString(); // a line may come in two chunks
      const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(seen);
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
    trustPath = trust.rootJsonPath;
    small = randomBytes(100_000);
    big = randomBytes(20 * 1024 * 1024 + 777); // over the 8 MiB part size: a multipart upload
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
    envelope = release('3.6.1', 1, [art('components/small.bin', small), art('components/router.tgz', big)]);
    cfg = join(dir, 'airlock.yml');
    writeConfig(cfg, join(dir, 'cache'), trust.rootJsonPath, PREFIX);
    writeConfig(join(dir, 'airgap.yml'), join(dir, 'cache-airgap'), trust.rootJsonPath, 'site-b');
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
    expect(await keysInBucket(`${PREFIX}/blobs/`)).toEqual([small, big].map((b) => blobKey(b)).sort());
    // and the release record beside them, shared by every cache node over this bucket and prefix
    expect(await keysInBucket()).toEqual([...[small, big].map((b) => blobKey(b)), `${PREFIX}/accepted/stackato.json`, `${PREFIX}/releases/3.6.1.json`].sort());
    const got = await ceph.client().send(new GetObjectCommand({ Bucket: BUCKET, Key: blobKey(big) }));
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

    // a second cache node (its own cache_dir) on the same bucket and prefix: its stage records the release, downloads nothing
    const second = join(dir, 'second.yml');
    writeConfig(second, join(dir, 'cache-second'), trustPath, PREFIX);
    const other = await airlock(['stage', envelope, '--json'], second);
    expect(other.code, other.stderr).toBe(0);
    expect(lastJson(other)).toMatchObject({ fetched: 0 });
    expect(up.requests.length).toBe(requests);
    expect((await airlock(['status', '3.6.1'], second)).code).toBe(0);
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

  it('serve: clients that go away mid-blob end their GETs at RGW (no socket to the gateway left open); the next GET is whole', async () => {
    const port = await startServe();
    const base = `http://127.0.0.1:${port}`;
    const hex = sha256(big);
    const whole = async (): Promise<void> => {
      const r = await fetch(`${base}/blobs/sha256/${hex}`);
      expect(sha256(Buffer.from(await r.arrayBuffer()))).toBe(hex);
    };
    await whole();
    const before = gatewaySockets(serve!.pid!);
    // one at a time, so each GET can take the socket kept from the one before: a leak would add one per client
    for (let i = 0; i < 6; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = http.get(`${base}/blobs/sha256/${hex}`, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
      });
    }
    const busy = async (): Promise<number> => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return Number(/^airlock_object_store_sockets\{state="busy"\} (\d+)$/m.exec(text)?.[1] ?? NaN);
    };
    const t0 = Date.now();
    while ((await busy()) !== 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
    expect(await busy()).toBe(0);
    expect(gatewaySockets(serve!.pid!)).toBeLessThanOrEqual(before);
    await whole();
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
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: blobKey(small), Body: forged }));
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

  it('export reads the bucket, import into another prefix verifies every blob into it; status ready there', async () => {
    const bundle = join(dir, 'bundle.tar');
    const ex = await airlock(['export', '3.6.1', '--out', bundle, '--json']);
    expect(ex.code, ex.stderr).toBe(0);
    expect(lastJson(ex)).toMatchObject({ blobs: 2, bytes: small.length + big.length });
    const airgap = join(dir, 'airgap.yml');
    const im = await airlock(['import', bundle, '--json'], airgap);
    expect(im.code, im.stderr).toBe(0);
    expect(lastJson(im)).toMatchObject({ blobs: { total: 2, imported: 2, skipped: 0 } });
    expect(await keysInBucket('site-b/blobs/')).toEqual([small, big].map((b) => blobKey(b, 'site-b')).sort());
    expect(existsSync(join(dir, 'cache-airgap', 'blobs'))).toBe(false);
    const st = await airlock(['status', '3.6.1', '--json'], airgap);
    expect(st.code, st.stderr).toBe(0);
    expect(lastJson(st)).toMatchObject({ ok: true, status: { ready: true } });
  });

  it('gc deletes the blobs no kept release needs and empties the bucket\'s quarantine', async () => {
    const extra = randomBytes(50_000);
    const next = release('3.6.2', 2, [art('components/small.bin', small), art('components/extra.bin', extra)]);
    const st = await airlock(['stage', next, '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect((await keysInBucket(`${PREFIX}/quarantine/`)).length).toBe(1); // verify's, above
    // --grace 0: every blob here is minutes old, younger than the 1h a shared bucket keeps by default
    const dry = await airlock(['gc', '--keep', '3.6.2', '--dry-run', '--grace', '0', '--json']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(lastJson(dry)).toMatchObject({ blobs: { deleted: { count: 1, bytes: big.length } }, quarantine: { count: 1, bytes: small.length } });
    expect(await keysInBucket(`${PREFIX}/blobs/`)).toHaveLength(3);
    const gc = await airlock(['gc', '--keep', '3.6.2', '--grace', '0', '--json']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(await keysInBucket(`${PREFIX}/blobs/`)).toEqual([extra, small].map((b) => blobKey(b)).sort());
    expect(await keysInBucket(`${PREFIX}/releases/`)).toEqual([`${PREFIX}/releases/3.6.2.json`]);
    expect((await airlock(['status', '3.6.2'])).code).toBe(0);
  });

  it('the disk preflight counts only the partial files of the downloads in flight, not the whole release', async () => {
    const GiB = 2 ** 30;
    const huge = Array.from({ length: 40 }, (_, i): Artifact => ({
      path: `huge/${i}.bin`,
      kind: 'file',
      sha256: sha256(Buffer.from(`huge ${i}`)),
      size: 8 * GiB + i,
      urls: [`${up.url}/huge/${i}`],
    }));
    const file = release('9.0.0', 9, huge);
    const sink = new Writable({ write: (_c, _e, cb) => cb() });
    const out = createOutput(true, { stdout: sink, stderr: sink });
    // in this process, as the CLI would: credentials from the environment
    Object.assign(process.env, ceph.env);
    const s3 = await stageRelease(loadConfig({ config: cfg, parallel: '2' }), out, { source: file, plan: true });
    for (const k of Object.keys(ceph.env)) delete process.env[k];
    expect(s3.plan.space.needed).toBe(2 * 8 * GiB + 39 + 38 + s3.plan.space.margin);
    // the same release into cache_dir needs room for all of it
    const fs = await stageRelease(loadConfig({ cacheDir: join(dir, 'cache-fs'), trust: trustPath, parallel: '2' }, dir, { file: false }), out, {
      source: file,
      plan: true,
    });
    expect(fs.plan.space.needed).toBeGreaterThan(320 * GiB);
  });

  // after gc: 3.6.2 is the release in this cache
  it('no credentials, a missing bucket, a gateway that does not answer: one line each, no stack trace', async () => {
    const noKeys = await runCli(AIRLOCK, ['status', '3.6.2', '--config', cfg], cleanEnv({ HOME: dir }));
    expect(noKeys.code).toBe(2);
    expect(noKeys.stderr).toMatch(/no S3 credentials .*AWS_ACCESS_KEY_ID/);
    const noBucket = join(dir, 'no-bucket.yml');
    writeFileSync(noBucket, `cache_dir: ${join(dir, 'cache')}\nstorage: {backend: s3, s3: {endpoint: "${ceph.endpoint}", bucket: not-there}}\n`);
    const nb = await airlock(['status', '3.6.2'], noBucket);
    expect(nb.code).toBe(2);
    expect(nb.stderr).toMatch(/bucket does not exist/);
    const dead = join(dir, 'dead.yml');
    writeFileSync(dead, `cache_dir: ${join(dir, 'cache')}\nstorage: {backend: s3, s3: {endpoint: "http://127.0.0.1:1", bucket: ${BUCKET}}}\n`);
    const d = await airlock(['status', '3.6.2'], dead);
    expect(d.code).toBe(5);
    expect(d.stderr).toMatch(/EUPSTREAM/);
    for (const r of [noKeys, nb, d]) {
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('relocate NEW_DIR with blobs in a bucket points to --to-fs in one line (exit 2)', async () => {
    const r = await airlock(['relocate', join(dir, 'elsewhere')]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/the blobs are in s3:\/\/airlock\/site-a; "airlock relocate --to-fs .*elsewhere" brings them back/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
