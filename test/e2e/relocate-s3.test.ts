/**
 * `airlock relocate` between the filesystem and a REAL Ceph RGW bucket, both
 * ways, with the built CLI: a filesystem cache moves into the bucket (status
 * ready, verify clean, the config says s3, cache_dir/blobs gone) while a
 * running `airlock serve` keeps answering with the right bytes and is handed
 * over by SIGHUP; then back to the filesystem (same checks, the bucket keeps
 * its copy); a wrong object in the bucket is refused on the way back
 * (EINTEGRITY, nothing switched); a run SIGKILLed while copying is finished
 * by the next; no credentials, no bucket, a dead endpoint: one line before
 * anything is copied.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { skipWithoutCeph, startCeph, type Ceph } from '../support/ceph.js';
import { AIRLOCK, cleanEnv } from '../support/cli.js';
import { freePorts } from '../../scripts/world/net.js';
import { fill, fileArt, openFilled, randomBlob, root1Bytes, sampleRelease, signRelease, strangerKey, tmp, type Blob } from '../storage/bundle/fixtures.js';

const BUCKET = 'airlock';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let ceph: Ceph;
let dir: string;
const serves: ChildProcess[] = [];

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function airlock(args: string[], env: NodeJS.ProcessEnv = cleanEnv(ceph.env), killOn?: RegExp): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [AIRLOCK, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (killOn?.test(stderr)) child.kill('SIGKILL');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const lastJson = (r: Run): Record<string, unknown> => {
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  if (lines.length === 0) throw new Error(`no JSON from airlock (exit ${r.code}): ${r.stderr}`);
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
};

async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const r = await ceph.client().send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
    out.push(...(r.Contents ?? []).map((o) => o.Key!));
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  return out.sort();
}

const blobKey = (prefix: string, hex: string): string => `${prefix}/blobs/sha256/${hex.slice(0, 2)}/${hex}`;

interface Site {
  home: string;
  cache: string;
  config: string;
  blobs: Blob[];
}

let sites = 0;
/** A filesystem cache with two releases (one blob over the 8 MiB part size: a multipart upload), and its config with a comment. */
async function makeSite(): Promise<Site> {
  const home = join(dir, `site${sites++}`);
  await mkdir(home);
  const r = sampleRelease('3.6.2', 17, { file: 300_000, layer: 9 * 1024 * 1024 });
  const cache = join(home, 'cache');
  const store = await openFilled(cache, r.envelope, r.blobs);
  const extra = Array.from({ length: 8 }, () => randomBlob(40_000));
  await fill(store, signRelease({ release: '3.6.3', serial: 18, artifacts: extra.map((b, i) => fileArt(`f/${i}.bin`, b)) }), extra);
  await store.close();
  await writeFile(join(home, 'root.json'), root1Bytes);
  const config = join(home, 'airlock.yml');
  await writeFile(config, `# site config\ncache_dir: ${cache}  # the disk\ntrust: ./root.json\nparallel: 4\n`);
  return { home, cache, config, blobs: [...r.blobs, ...extra] };
}

const configOf = (site: Site): { cache_dir: string; storage?: { backend: string; s3?: Record<string, unknown> }; parallel: number } =>
  parse(readFileSync(site.config, 'utf8')) as ReturnType<typeof configOf>;

/** status of both releases ready and verify clean, through the CLI */
async function assertReady(site: Site, others = 0): Promise<void> {
  for (const release of ['3.6.2', '3.6.3']) {
    const st = await airlock(['status', release, '--config', site.config, '--json']);
    expect(st.code, st.stderr).toBe(0);
    expect(lastJson(st)).toMatchObject({ ok: true, status: { ready: true } });
  }
  const v = await airlock(['verify', '--config', site.config, '--json']);
  expect(v.code, v.stderr).toBe(0);
  expect(lastJson(v)).toMatchObject({ ok: true, checked: site.blobs.length + others, intact: site.blobs.length + others });
}

function startServe(site: Site): Promise<{ base: string; log: () => string; child: ChildProcess }> {
  const child = spawn(process.execPath, [AIRLOCK, 'serve', '--config', site.config, '--listen', `127.0.0.1:${port}`], {
    env: cleanEnv(ceph.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serves.push(child);
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${seen}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (/"address":"http:/.test(seen)) {
        clearTimeout(timer);
        resolve({ base: `http://127.0.0.1:${port}`, log: () => seen, child });
      }
    });
    child.stderr!.on('data', (d: Buffer) => (seen += d.toString()));
    child.on('exit', (code) => reject(new Error(`airlock serve exited ${code}: ${seen}`)));
  });
}

async function fetchAll(base: string, blobs: Blob[]): Promise<void> {
  await Promise.all(
    blobs.map(async (b) => {
      const res = await fetch(`${base}/blobs/sha256/${b.sha256}`);
      expect(res.status).toBe(200);
      expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(b.sha256);
    }),
  );
}

/** Keeps asking serve for every blob until `done` settles; every answer must be whole and right. */
async function hammer(base: string, blobs: Blob[], done: Promise<unknown>): Promise<number> {
  let finished = false;
  void done.finally(() => (finished = true));
  let rounds = 0;
  while (!finished) {
    await fetchAll(base, blobs);
    rounds++;
  }
  return rounds;
}

let port = 0;

describe.skipIf(skipWithoutCeph)('airlock relocate between the filesystem and a real Ceph RGW bucket', () => {
  beforeAll(async () => {
    if (!existsSync(AIRLOCK)) throw new Error(`${AIRLOCK} is missing: run npm run build (scripts/test.sh does)`);
    ceph = await startCeph();
    await ceph.createBucket(BUCKET);
    dir = await tmp('airlock-relocate-s3-');
    [port] = await freePorts(1);
  }, 150_000);

  afterAll(async () => {
    for (const s of serves) {
      if (s.exitCode === null && s.signalCode === null) {
        s.kill('SIGKILL');
        await new Promise((r) => s.once('exit', r));
      }
    }
    await ceph?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let site: Site;
  const s3 = (prefix: string): string[] => [`s3://${BUCKET}/${prefix}`, '--endpoint', ceph.endpoint];

  it('no credentials, no such bucket, an endpoint that does not answer: one line each, before anything is copied', async () => {
    site = await makeSite();
    const noKeys = cleanEnv({});
    for (const k of Object.keys(noKeys)) if (k.startsWith('AWS_')) delete noKeys[k];
    noKeys.AWS_CONFIG_FILE = join(dir, 'none');
    noKeys.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'none');
    noKeys.AWS_EC2_METADATA_DISABLED = 'true';
    const bare = await airlock(['relocate', ...s3('site-a'), '--config', site.config], noKeys);
    expect(bare.code, bare.stderr).toBe(2);
    expect(bare.stderr).toMatch(/^airlock: EUSAGE: relocate: .*no S3 credentials.*nothing was copied\n$/);

    const missing = await airlock(['relocate', `s3://no-such-bucket/x`, '--endpoint', ceph.endpoint, '--config', site.config]);
    expect(missing.code, missing.stderr).toBe(2);
    expect(missing.stderr).toMatch(/^airlock: EUSAGE: relocate: .*bucket does not exist.*\n$/);

    const [dead] = await freePorts(1);
    const down = await airlock(['relocate', `s3://${BUCKET}/site-a`, '--endpoint', `http://127.0.0.1:${dead}`, '--config', site.config]);
    expect(down.code, down.stderr).toBe(5);
    expect(down.stderr).toMatch(/^airlock: EUPSTREAM: relocate: .*\n$/);
    expect(down.stderr).not.toMatch(/\n\s+at /);

    expect(await keys('site-a/')).toEqual([]);
    expect(existsSync(join(site.cache, 'relocate.json'))).toBe(false);
    expect(configOf(site).storage).toBeUndefined();
  }, 60_000);

  it('fs → s3 while serve answers: verified in the bucket, config says s3, cache_dir/blobs gone, serve handed over', async () => {
    // a blob of some other cache node already under the prefix: fine, left alone
    const foreign = randomBlob(1000);
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: blobKey('site-a', foreign.sha256), Body: foreign.bytes }));
    const serve = await startServe(site);
    await fetchAll(serve.base, site.blobs);

    const run = airlock(['relocate', ...s3('site-a'), '--config', site.config, '--json']);
    const rounds = await hammer(serve.base, site.blobs, run);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    expect(rounds).toBeGreaterThan(0);
    expect(r.stdout + r.stderr).toMatch(/already holds 1 blob\(s\) this cache does not: fine, blobs are content-addressed/);
    const result = lastJson(r);
    expect(result).toMatchObject({
      ok: true,
      direction: 'to-s3',
      outcome: 'relocated',
      blobs: { total: site.blobs.length, copied: site.blobs.length, present: 0, others: 1 },
      oldRemoved: true,
      servers: { moved: [serve.child.pid], stuck: [] },
    });

    const cfg = configOf(site);
    expect(cfg).toMatchObject({ cache_dir: site.cache, parallel: 4, storage: { backend: 's3', s3: { bucket: BUCKET, prefix: 'site-a', endpoint: ceph.endpoint } } });
    expect(readFileSync(site.config, 'utf8')).toContain('# site config');
    expect(existsSync(join(site.cache, 'blobs'))).toBe(false);
    expect(existsSync(join(site.cache, 'relocate.json'))).toBe(false);
    // the release records went into the bucket before the switch
    expect(result).toMatchObject({ records: { published: ['3.6.2', '3.6.3'], present: [] } });
    expect(await keys('site-a/releases/')).toEqual(['site-a/releases/3.6.2.json', 'site-a/releases/3.6.3.json']);
    const record = await ceph.client().send(new GetObjectCommand({ Bucket: BUCKET, Key: 'site-a/releases/3.6.2.json' }));
    expect(Buffer.from(await record.Body!.transformToByteArray())).toEqual(readFileSync(join(site.cache, 'index', 'envelopes', '3.6.2.json')));
    expect((await keys('site-a/accepted/')).length).toBe(1);
    const inBucket = await keys('site-a/blobs/');
    for (const b of site.blobs) expect(inBucket).toContain(blobKey('site-a', b.sha256));
    const big = site.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const got = await ceph.client().send(new GetObjectCommand({ Bucket: BUCKET, Key: blobKey('site-a', big.sha256) }));
    expect(sha(Buffer.from(await got.Body!.transformToByteArray()))).toBe(big.sha256);

    // serve, handed over, answers from the bucket (there is nothing left on disk)
    await fetchAll(serve.base, site.blobs);
    expect(serve.log()).toMatch(/blob storage moved: serving blobs from the new one/);
    await assertReady(site, 1);

    // again: nothing to do
    const again = await airlock(['relocate', ...s3('site-a'), '--config', site.config]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/nothing to do/);
  }, 120_000);

  it('s3 → fs while serve answers: blobs back under cache_dir/blobs, config says fs, the bucket keeps its copy', async () => {
    const serve = { base: `http://127.0.0.1:${port}`, child: serves.at(-1)! };
    const run = airlock(['relocate', '--to-fs', '--config', site.config, '--json']);
    await hammer(serve.base, site.blobs, run);
    const r = await run;
    expect(r.code, r.stderr).toBe(0);
    expect(lastJson(r)).toMatchObject({
      ok: true,
      direction: 'to-fs',
      blobs: { total: site.blobs.length + 1, copied: site.blobs.length + 1 },
      bucket: null,
      servers: { moved: [serve.child.pid], stuck: [] },
    });
    expect(r.stdout + r.stderr).toMatch(/stay in s3:\/\/airlock\/site-a as well/);
    expect(configOf(site).storage).toEqual({ backend: 'fs' });
    expect((await readdir(join(site.cache, 'blobs', 'sha256'))).length).toBeGreaterThan(0);
    await fetchAll(serve.base, site.blobs);
    await assertReady(site, 1);
    // the bucket keeps its objects (other cache nodes may share the prefix)
    for (const b of site.blobs) expect(await keys(blobKey('site-a', b.sha256))).toHaveLength(1);
  }, 120_000);

  it('s3 → fs refuses an object the bucket holds wrong: EINTEGRITY, nothing switched; fixed, the same command finishes', async () => {
    // into the bucket again: every object there already is hashed there and kept, none sent again
    const back = await airlock(['relocate', ...s3('site-a'), '--config', site.config, '--json']);
    expect(back.code, back.stderr).toBe(0);
    expect(lastJson(back)).toMatchObject({ blobs: { copied: 0, present: site.blobs.length + 1 } });

    // a release of some other site (signed by a key this trust root does not know) and its blob, in the same prefix
    const theirs = randomBlob(5000);
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: blobKey('site-a', theirs.sha256), Body: theirs.bytes }));
    const theirRecord = signRelease({ release: '9.9.9', serial: 1, artifacts: [fileArt('x.bin', theirs)] }, strangerKey);
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: 'site-a/releases/9.9.9.json', Body: theirRecord }));

    const victim = site.blobs[0]!;
    const forged = Buffer.from(victim.bytes);
    forged[100] ^= 0xff;
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: blobKey('site-a', victim.sha256), Body: forged }));
    const bad = await airlock(['relocate', '--to-fs', '--config', site.config]);
    expect(bad.code, bad.stderr).toBe(3);
    // the record of the other site is skipped with one line (not trusted here), then the refusal: one line
    expect(bad.stderr).toMatch(/^skipped s3:\/\/airlock\/site-a\/releases\/9\.9\.9\.json: /);
    expect(bad.stderr.trim().split('\n').at(-1)).toMatch(
      new RegExp(`^airlock: EINTEGRITY: relocate: blob sha256:${victim.sha256} as the bucket holds it is not that blob.*nothing switched`),
    );
    expect(configOf(site).storage).toMatchObject({ backend: 's3' });
    // the bad bytes never landed under cache_dir/blobs
    expect(existsSync(join(site.cache, 'blobs', 'sha256', victim.sha256.slice(0, 2), victim.sha256))).toBe(false);

    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: blobKey('site-a', victim.sha256), Body: victim.bytes }));
    const fixed = await airlock(['relocate', '--to-fs', '--remove-from-bucket', '--config', site.config, '--json']);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stdout).toMatch(/skipped s3:\/\/airlock\/site-a\/releases\/9\.9\.9\.json/);
    expect(configOf(site).storage).toEqual({ backend: 'fs' });
    // every blob came down (theirs too); the bucket lost ours and our records, kept their record and the blob it names
    expect(lastJson(fixed)).toMatchObject({ blobs: { total: site.blobs.length + 2 }, bucket: { removed: site.blobs.length + 1, kept: 1, records: ['3.6.2', '3.6.3'] } });
    expect(await keys('site-a/releases/')).toEqual(['site-a/releases/9.9.9.json']);
    expect(await keys('site-a/blobs/')).toEqual([blobKey('site-a', theirs.sha256)]);
    expect(existsSync(join(site.cache, 'index', 'shared'))).toBe(false);
    // the running serve (on the bucket meanwhile) never took the record its trust root does not admit
    expect(existsSync(join(site.cache, 'index', 'envelopes', '9.9.9.json'))).toBe(false);
    await assertReady(site, 2);
  }, 120_000);

  it('fs → s3 refuses a blob damaged on the local disk: EINTEGRITY, nothing switched, never in the bucket', async () => {
    const damaged = await makeSite();
    const victim = damaged.blobs.find((b) => b.size > 100_000)!;
    const file = join(damaged.cache, 'blobs', 'sha256', victim.sha256.slice(0, 2), victim.sha256);
    await chmod(file, 0o644);
    const bytes = Buffer.from(victim.bytes);
    bytes[7] ^= 0xff;
    await writeFile(file, bytes);
    const r = await airlock(['relocate', ...s3('site-d'), '--config', damaged.config]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`^airlock: EINTEGRITY: relocate: blob sha256:${victim.sha256} in .*/blobs is not that blob.*nothing switched.*\\n$`));
    expect(configOf(damaged).storage).toBeUndefined();
    expect(await keys(blobKey('site-d', victim.sha256))).toEqual([]);
    expect(await keys('site-d/releases/')).toEqual([]);
  }, 60_000);

  it('fs → s3 refuses a release whose record in the bucket is another envelope, before anything is copied', async () => {
    const mine = await makeSite();
    const otherEnvelope = signRelease({ release: '3.6.2', serial: 17, artifacts: [fileArt('y.bin', randomBlob(100))] });
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: 'site-e/releases/3.6.2.json', Body: otherEnvelope }));
    const r = await airlock(['relocate', ...s3('site-e'), '--config', mine.config]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/^airlock: EUSAGE: relocate: s3:\/\/airlock\/site-e\/releases\/3\.6\.2\.json holds another envelope of release 3\.6\.2 than this cache.*\n$/);
    expect(await keys('site-e/blobs/')).toEqual([]);
    expect(configOf(mine).storage).toBeUndefined();
    expect(existsSync(join(mine.cache, 'relocate.json'))).toBe(false);
  }, 60_000);

  it('SIGKILLed while copying into the bucket: the config still names the complete folder; the same command finishes', async () => {
    const other = await makeSite();
    const args = ['relocate', ...s3('site-k'), '--config', other.config];
    const killed = await airlock(args, { ...cleanEnv(ceph.env), AIRLOCK_TEST_RELOCATE_PAUSE: 'copying' }, /paused at copying/);
    expect(killed.signal).toBe('SIGKILL');
    expect(configOf(other).storage).toBeUndefined();
    expect(existsSync(join(other.cache, 'relocate.json'))).toBe(true);
    const partway = await keys('site-k/blobs/');
    expect(partway.length).toBeGreaterThan(0);
    expect(partway.length).toBeLessThan(other.blobs.length);
    await assertReady(other);
    // a folder move meanwhile is refused: this move must finish first (and the cache is never taken for an old copy)
    for (const to of [other.cache, join(other.home, 'elsewhere')]) {
      const folder = await airlock(['relocate', to, '--config', other.config]);
      expect(folder.code, folder.stderr).toBe(2);
      expect(folder.stderr).toMatch(/^airlock: EUSAGE: relocate: a move of the blobs of .* between the filesystem and a bucket is in progress/);
    }
    expect(existsSync(join(other.cache, 'blobs'))).toBe(true);

    const again = await airlock([...args, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const result = lastJson(again) as { blobs: { copied: number; present: number } };
    expect(result.blobs.present).toBe(partway.length);
    expect(result.blobs.copied + result.blobs.present).toBe(other.blobs.length);
    expect(configOf(other).storage).toMatchObject({ backend: 's3', s3: { prefix: 'site-k' } });
    expect(existsSync(join(other.cache, 'blobs'))).toBe(false);
    await assertReady(other);

    // and out of the bucket into a new cache_dir: the folder's records go along, the old folder goes
    const moved = join(other.home, 'bigdisk');
    const out = await airlock(['relocate', '--to-fs', moved, '--config', other.config, '--json']);
    expect(out.code, out.stderr).toBe(0);
    expect(lastJson(out)).toMatchObject({ direction: 'to-fs', from: other.cache, to: moved, oldRemoved: true, blobs: { copied: other.blobs.length } });
    expect(configOf(other)).toMatchObject({ cache_dir: moved, storage: { backend: 'fs' } });
    expect(existsSync(other.cache)).toBe(false);
    expect(existsSync(join(moved, 'relocate.json'))).toBe(false);
    await assertReady(other);
  }, 180_000);

  it('SIGKILLed at each later point into the bucket (verified, switched, removing): the config names a complete copy; the same command finishes', async () => {
    for (const point of ['verified', 'switched', 'removing']) {
      const site = await makeSite();
      const prefix = `site-${point}`;
      const args = ['relocate', ...s3(prefix), '--config', site.config];
      const killed = await airlock(args, { ...cleanEnv(ceph.env), AIRLOCK_TEST_RELOCATE_PAUSE: point }, new RegExp(`paused at ${point}`));
      expect(killed.signal, `${point}: ${killed.stderr}`).toBe('SIGKILL');
      // before the switch the folder, after it the bucket: either way the config's place is complete
      expect(configOf(site).storage?.backend ?? 'fs').toBe(point === 'verified' ? 'fs' : 's3');
      const st = await airlock(['status', '3.6.2', '--config', site.config]);
      expect(st.code, `${point}: ${st.stderr}`).toBe(0);
      const again = await airlock(args);
      expect(again.code, `${point}: ${again.stderr}`).toBe(0);
      expect(configOf(site).storage).toMatchObject({ backend: 's3', s3: { prefix } });
      expect(existsSync(join(site.cache, 'blobs'))).toBe(false);
      expect(existsSync(join(site.cache, 'relocate.json'))).toBe(false);
      await assertReady(site);
    }
  }, 180_000);
});
