/**
 * `redirect_blobs: true` against a REAL Ceph RGW: a release of real things
 * (debs, an umoci image, files; test/server/http/fixture.ts) exported from a
 * filesystem cache and imported into a bucket, served by the built `airlock
 * serve` with blob and file GETs answered `307` to presigned RGW URLs.
 * Real clients follow them: curl -L (whole, Range), skopeo (the registry API),
 * airlock-node upgrade (whole, resumed after a SIGKILL, and sent back to the
 * cache by an expired URL). HEAD, 304, 416 and a missing blob stay airlock's
 * answers; /metrics counts the redirects, and its store figures come from one
 * listing of the bucket, with no HEAD per blob.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Backend, type S3BlobBackend } from '../../storage/backend/s3.js';
import type { Store } from '../../storage/index.js';
import type { CatalogSource } from '../../server/http/catalog.js';
import { storeFigures } from '../../server/http/store-figures.js';
import { makeFixture, type Fixture } from '../server/http/fixture.js';
import { skipWithoutCeph, startCeph, type Ceph } from '../support/ceph.js';
import { AIRLOCK, NODE_CLI, cleanEnv, runCli, type Run } from '../support/cli.js';

const pexec = promisify(execFile);
const BUCKET = 'airlock';
const PREFIX = 'site-a';
const MiB = 2 ** 20;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let ceph: Ceph;
let fx: Fixture;
let dir: string;
let cfg: string;
let trustPath: string;
let serve: ChildProcess | null = null;
let serveLog: string[] = [];
let base: string;
let bigHex: string;
let big: Buffer;

const env = (): NodeJS.ProcessEnv => cleanEnv(ceph.env);
const airlock = (args: string[]): Promise<Run> => runCli(AIRLOCK, args, env());
const rgwPort = (): string => new URL(ceph.endpoint).port;

function writeConfig(file: string, extra: string[]): void {
  writeFileSync(
    file,
    [
      `cache_dir: ${join(dir, 'cache-s3')}`,
      `trust: ${trustPath}`,
      'storage:',
      '  backend: s3',
      `  s3: {endpoint: "${ceph.endpoint}", bucket: ${BUCKET}, prefix: "${PREFIX}", region: us-east-1, force_path_style: true}`,
      ...extra,
      '',
    ].join('\n'),
  );
}

function startServe(config: string): Promise<number> {
  const child = spawn(process.execPath, [AIRLOCK, 'serve', '--config', config, '--listen', '127.0.0.1:0', '--grace', '1'], {
    env: env(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serve = child;
  serveLog = [];
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${seen}`)), 30_000);
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString(); // a line may come in two chunks
      const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.stdout!.on('data', (d: Buffer) => serveLog.push(d.toString()));
    child.stderr!.on('data', (d: Buffer) => (seen += `stderr: ${d.toString()}`));
    child.on('exit', (code) => reject(new Error(`airlock serve exited ${code}: ${seen}`)));
  });
}

/** serve's access log so far: one object per request */
const accessLines = (): Array<{ url: string; status: number; method: string }> =>
  serveLog
    .join('')
    .split('\n')
    .filter((l) => l.includes('"msg":"request"'))
    .map((l) => JSON.parse(l) as { url: string; status: number; method: string });

async function curl(args: string[]): Promise<{ stdout: string; code: number; stderr: string }> {
  try {
    const r = await pexec('curl', ['-sS', ...args], { maxBuffer: 64 * MiB, encoding: 'latin1' });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { stdout: err.stdout ?? '', stderr: err.stderr ?? '', code: typeof err.code === 'number' ? err.code : 1 };
  }
}

/** Status and headers of one request, no redirect followed. */
function ask(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function metricValue(name: string, labels = ''): Promise<number | null> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.split(' ')[1]) : null;
}

describe.skipIf(skipWithoutCeph)('airlock serve with redirect_blobs against a real Ceph RGW', () => {
  beforeAll(async () => {
    if (!existsSync(AIRLOCK) || !existsSync(NODE_CLI)) throw new Error('dist/ is missing: run npm run build (scripts/test.sh does)');
    [ceph, fx] = await Promise.all([startCeph(), makeFixture({ bigSize: 24 * MiB + 333 })]);
    await fx.store.close();
    await ceph.createBucket(BUCKET);
    dir = mkdtempSync(join(tmpdir(), 'airlock-s3-redirect-'));
    trustPath = join(fx.dir, 'keys', 'root.json');
    big = readFileSync(fx.local.get('components/big.bin')!);
    bigHex = sha(big);
    // into the bucket the way an operator would: export from the filesystem cache, import with storage: s3
    const bundle = join(dir, 'bundle.tar');
    const ex = await airlock(['export', fx.release, '--cache-dir', join(fx.dir, 'cache'), '--trust', trustPath, '--out', bundle]);
    expect(ex.code, ex.stderr).toBe(0);
    cfg = join(dir, 'airlock.yml');
    writeConfig(cfg, ['redirect_blobs: true', 'redirect_ttl: 10m']);
    const im = await runCli(AIRLOCK, ['import', bundle, '--config', cfg], env());
    expect(im.code, im.stderr).toBe(0);
    base = `http://127.0.0.1:${await startServe(cfg)}`;
  }, 240_000);

  afterAll(async () => {
    if (serve && serve.exitCode === null) {
      serve.kill('SIGKILL');
      await new Promise((r) => serve!.once('exit', r));
    }
    await ceph?.stop();
    if (fx) await rm(fx.dir, { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a blob GET is a 307 to a presigned URL on the RGW endpoint; curl -L gets the bytes; HEAD, 304, 416 and a missing blob are airlock\'s answers', async () => {
    const r = await ask(`/blobs/sha256/${bigHex}`);
    expect(r.status).toBe(307);
    const location = new URL(String(r.headers.location));
    expect(location.origin).toBe(`http://127.0.0.1:${rgwPort()}`);
    expect(location.pathname).toBe(`/${BUCKET}/${PREFIX}/blobs/sha256/${bigHex.slice(0, 2)}/${bigHex}`);
    expect(location.searchParams.get('X-Amz-Expires')).toBe('600');
    expect(r.headers['docker-content-digest']).toBe(`sha256:${bigHex}`);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(r.headers['content-length']).toBe('0');

    const file = join(dir, 'curl-big');
    const got = await curl(['-L', '-o', file, '-w', '%{http_code} %{num_redirects} %{url_effective}', `${base}/blobs/sha256/${bigHex}`]);
    expect(got.code, got.stderr).toBe(0);
    const [code, hops, effective] = got.stdout.split(' ');
    expect([code, hops]).toEqual(['200', '1']);
    expect(effective).toContain(`127.0.0.1:${rgwPort()}/${BUCKET}/`);
    expect(sha(readFileSync(file))).toBe(bigHex);

    // HEAD: the size and digest from airlock, no redirect, nothing fetched from RGW by the client
    const head = await ask(`/blobs/sha256/${bigHex}`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(big.length));
    expect(head.headers['docker-content-digest']).toBe(`sha256:${bigHex}`);
    expect(head.headers.location).toBeUndefined();
    const notModified = await ask(`/blobs/sha256/${bigHex}`, { 'if-none-match': `"sha256:${bigHex}"` });
    expect(notModified.status).toBe(304);
    const past = await ask(`/blobs/sha256/${bigHex}`, { range: `bytes=${big.length}-` });
    expect(past.status).toBe(416);
    expect(past.headers['content-range']).toBe(`bytes */${big.length}`);

    const absent = await ask(`/blobs/sha256/${sha(Buffer.from('not staged'))}`);
    expect(absent.status).toBe(404);
    expect(absent.headers.location).toBeUndefined();
    const absentFile = await ask(`/files/${fx.release}/components/none.bin`);
    expect(absentFile.status).toBe(404);
  });

  it('a Range request follows the redirect: RGW answers the range of the presigned object', async () => {
    const start = 9 * MiB - 5;
    const got = await curl(['-L', '-r', `${start}-${start + 99}`, '-w', '\n%{http_code}', `${base}/files/${fx.release}/components/big.bin`]);
    expect(got.code, got.stderr).toBe(0);
    const cut = got.stdout.lastIndexOf('\n');
    expect(got.stdout.slice(cut + 1)).toBe('206');
    expect(Buffer.from(got.stdout.slice(0, cut), 'latin1')).toEqual(big.subarray(start, start + 100));
    // the redirect itself carries no range: the client sends its Range again to RGW
    const r = await ask(`/files/${fx.release}/components/big.bin`, { range: 'bytes=0-9' });
    expect(r.status).toBe(307);
    expect(r.headers['content-range']).toBeUndefined();
  });

  it('a typed file (a .deb) comes from RGW with its type; an image\'s path under /files/ is its manifest, answered by airlock', async () => {
    const deb = fx.manifest.artifacts.find((a) => a.kind === 'deb')!;
    const got = await curl(['-L', '-o', join(dir, 'deb'), '-w', '%{http_code} %{num_redirects} %{content_type}', `${base}/files/${fx.release}/${deb.path}`]);
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toBe('200 1 application/vnd.debian.binary-package');
    expect(sha(readFileSync(join(dir, 'deb')))).toBe(deb.sha256);
    const image = await ask(`/files/${fx.release}/images/demo/app`);
    expect(image.status).toBe(200);
    expect(sha(image.body)).toBe(fx.imageDigest);
  });

  it('through airlock as a proxy (http_proxy=cache), a file is sent by airlock, never redirected: the client would ask its proxy for the bucket next', async () => {
    const app = readFileSync(fx.local.get('components/app.tgz')!);
    const staged = await curl(['-x', base, '-w', '\n%{http_code} %{num_redirects}', 'http://files.upstream.test/3.6.2/app.tgz']);
    expect(staged.code, staged.stderr).toBe(0);
    const cut = staged.stdout.lastIndexOf('\n');
    expect(staged.stdout.slice(cut + 1)).toBe('200 0');
    expect(sha(Buffer.from(staged.stdout.slice(0, cut), 'latin1'))).toBe(sha(app));
    // the cache's own URL asked through it as a proxy
    const own = await curl(['-x', base, '-o', '/dev/null', '-w', '%{http_code}', `${base}/blobs/sha256/${bigHex}`]);
    expect(own.stdout).toBe('200');
  });

  it('skopeo pulls the image through the registry API: manifests from airlock, blobs redirected to RGW', async () => {
    const out = join(dir, 'skopeo');
    await pexec('skopeo', ['copy', '--src-tls-verify=false', `docker://127.0.0.1:${new URL(base).port}/demo/app:1.0`, `oci:${out}:1.0`], {
      timeout: 120_000,
    });
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    expect(index.manifests[0]!.digest).toBe(`sha256:${fx.imageDigest}`);
    const image = fx.manifest.artifacts.find((a) => a.kind === 'oci-image');
    if (image?.kind !== 'oci-image') throw new Error('the fixture has no image');
    for (const b of image.blobs) expect(sha(readFileSync(join(out, 'blobs', 'sha256', b.sha256)))).toBe(b.sha256);

    const log = accessLines();
    const manifest = log.find((l) => l.url.startsWith('/v2/demo/app/manifests/') && l.method === 'GET');
    expect(manifest?.status).toBe(200);
    const blobs = log.filter((l) => l.url.startsWith('/v2/demo/app/blobs/') && l.method === 'GET');
    expect(blobs.length).toBeGreaterThan(0);
    for (const l of blobs) expect(l.status).toBe(307);
    // the registry's own headers stay on the redirect
    const layer = await ask(`/v2/demo/app/blobs/sha256:${image.blobs[1]!.sha256}`);
    expect(layer.status).toBe(307);
    expect(layer.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(layer.headers['docker-content-digest']).toBe(`sha256:${image.blobs[1]!.sha256}`);
  }, 150_000);

  it('airlock-node upgrade installs the release through the redirects, every blob verified', async () => {
    const root = join(dir, 'node-root');
    const state = join(dir, 'node-state');
    const r = await runCli(NODE_CLI, ['upgrade', '--cache', base, '--release', fx.release, '--root', root, '--state-dir', state, '--trust', trustPath, '--json'], cleanEnv());
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect((await pexec('dpkg', [`--root=${root}`, '-s', 'hello'])).stdout).toMatch(/install ok installed/);
    const staged = r.stdout.split('\n').filter((l) => l.includes('"event":"staged"')).map((l) => JSON.parse(l) as { sha256: string; fetched: boolean });
    expect(staged.length).toBe(fx.blobFiles.size);
    expect(staged.every((s) => s.fetched)).toBe(true);
    // every blob came through a 307 (the node asks /blobs/sha256/HEX)
    const fromNode = accessLines().filter((l) => l.url.startsWith('/blobs/sha256/') && l.method === 'GET');
    expect(new Set(fromNode.filter((l) => l.status === 307).map((l) => l.url)).size).toBe(fx.blobFiles.size);
  }, 180_000);

  it('a download killed mid-blob resumes with Range at RGW through a fresh redirect', async () => {
    const root = join(dir, 'resume-root');
    const state = join(dir, 'resume-state');
    const child = spawn(
      process.execPath,
      [NODE_CLI, 'upgrade', '--cache', base, '--release', fx.release, '--download-only', '--root', root, '--state-dir', state, '--trust', trustPath],
      { env: { ...cleanEnv(), AIRLOCK_NODE_TEST_PAUSE_AT_BYTES: String(8 * MiB) }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    const until = Date.now() + 90_000;
    while (!err.includes('test pause at') && Date.now() < until && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    await exited;
    expect(err).toMatch(/test pause at/);
    const held = statSync(join(state, 'staging', 'partial', bigHex)).size;
    expect(held).toBeGreaterThanOrEqual(8 * MiB);
    expect(held).toBeLessThan(big.length);

    const r = await runCli(
      NODE_CLI,
      ['upgrade', '--cache', base, '--release', fx.release, '--download-only', '--root', root, '--state-dir', state, '--trust', trustPath, '--json'],
      cleanEnv(),
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const event = r.stdout
      .split('\n')
      .filter((l) => l.includes('"event":"staged"'))
      .map((l) => JSON.parse(l) as { sha256: string; resumedFrom: number; transferred: number })
      .find((e) => e.sha256 === bigHex);
    expect(event).toMatchObject({ resumedFrom: held, transferred: big.length - held });
  }, 180_000);

  it('an expired presigned URL (403 at RGW) sends the node back to the cache, which redirects afresh', async () => {
    // a front that answers the first GET of the big blob with a URL that expired, and passes everything else to airlock
    const s3 = s3Backend({ endpoint: ceph.endpoint, bucket: BUCKET, prefix: PREFIX, credentials: ceph.credentials });
    const expired = await s3.presign(bigHex, 1);
    s3.close();
    await new Promise((r) => setTimeout(r, 2500));
    const rgw = await fetch(expired);
    expect(rgw.status).toBe(403);
    await rgw.arrayBuffer();
    let sentExpired = 0;
    const target = new URL(base);
    const front = http.createServer((req, res) => {
      if (req.url === `/blobs/sha256/${bigHex}` && sentExpired === 0) {
        sentExpired++;
        res.writeHead(307, { location: expired, 'content-length': 0 });
        return res.end();
      }
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (ans) => {
        res.writeHead(ans.statusCode ?? 502, ans.headers);
        ans.pipe(res);
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
    try {
      const port = (front.address() as { port: number }).port;
      const state = join(dir, 'expired-state');
      const r = await runCli(
        NODE_CLI,
        ['upgrade', '--cache', `http://127.0.0.1:${port}`, '--release', fx.release, '--download-only', '--root', join(dir, 'expired-root'), '--state-dir', state, '--trust', trustPath, '--json'],
        cleanEnv(),
      );
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(sentExpired).toBe(1);
      expect(r.stderr + r.stdout).toMatch(/answered 403 \(an expired or refused presigned URL/);
      const event = r.stdout
        .split('\n')
        .filter((l) => l.includes('"event":"staged"'))
        .map((l) => JSON.parse(l) as { sha256: string; fetched: boolean })
        .find((e) => e.sha256 === bigHex);
      expect(event?.fetched).toBe(true);
    } finally {
      await new Promise((r) => front.close(r));
    }
  }, 180_000);

  it('/metrics counts the redirects by route and measures the bucket right', async () => {
    expect(await metricValue('airlock_blob_redirects_total', '{route="blobs"}')).toBeGreaterThan(fx.blobFiles.size);
    expect(await metricValue('airlock_blob_redirects_total', '{route="files"}')).toBeGreaterThanOrEqual(2);
    expect(await metricValue('airlock_blob_redirects_total', '{route="v2-blobs"}')).toBeGreaterThanOrEqual(2);
    let bytes = 0;
    for (const f of fx.blobFiles.values()) bytes += statSync(f).size;
    expect(await metricValue('airlock_store_blobs')).toBe(fx.blobFiles.size);
    expect(await metricValue('airlock_store_bytes')).toBe(bytes);
    // a 307 sends no body bytes: what the blob routes sent is what airlock answered itself
    expect(await metricValue('airlock_release_ready', `{release="${fx.release}"}`)).toBe(1);
  });

  it('the store figures cost one listing of the bucket: no HEAD per blob', async () => {
    const s3: S3BlobBackend = s3Backend({ endpoint: ceph.endpoint, bucket: BUCKET, prefix: PREFIX, credentials: ceph.credentials });
    const sent = new Map<string, number>();
    s3.client.middlewareStack.add(
      (next, context) => (args) => {
        sent.set(context.commandName ?? '?', (sent.get(context.commandName ?? '?') ?? 0) + 1);
        return next(args);
      },
      { step: 'initialize', name: 'countRequests' },
    );
    try {
      // only what storeFigures reads of a store and a catalog
      const store = { backend: s3, cacheDir: dir, stat: (d: string) => s3.stat(d), status: () => Promise.reject(new Error('unused')) } as unknown as Store;
      const catalog = { get: () => Promise.resolve({ releases: new Map() }) } as unknown as CatalogSource;
      const figures = await storeFigures(store, catalog)();
      let bytes = 0;
      for (const f of fx.blobFiles.values()) bytes += statSync(f).size;
      expect(figures).toMatchObject({ blobs: fx.blobFiles.size, bytes });
      expect(sent.get('HeadObjectCommand') ?? 0).toBe(0);
      expect(sent.get('ListObjectsV2Command')).toBe(1);
    } finally {
      s3.close();
    }
  });

  it('redirect_blobs with blobs on the filesystem is refused in one line (exit 2)', async () => {
    const fsCfg = join(dir, 'fs.yml');
    writeFileSync(fsCfg, `cache_dir: ${join(fx.dir, 'cache')}\nredirect_blobs: true\n`);
    const r = await runCli(AIRLOCK, ['serve', '--config', fsCfg, '--listen', '127.0.0.1:0'], cleanEnv());
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/EUSAGE.*redirect_blobs needs blobs in S3/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const badTtl = join(dir, 'ttl.yml');
    writeFileSync(badTtl, `cache_dir: ${join(fx.dir, 'cache')}\nredirect_ttl: 8d\n`);
    const t = await runCli(AIRLOCK, ['serve', '--config', badTtl, '--listen', '127.0.0.1:0'], cleanEnv());
    expect(t.code).toBe(2);
    expect(t.stderr).toMatch(/redirect_ttl.*at most 604800 s/);
  });
});
