/**
 * `airlock serve` as a process, against real clients: skopeo (OCI), apt-get +
 * dpkg (flat repo, throwaway root), curl (ranges, caching, proxy mode), raw
 * sockets (hostile requests, a client that never reads), a graceful
 * shutdown, and a bounded load test. All on 127.0.0.1, ports picked at runtime.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/world/cache.js';
import { BIG_URL, FILE_URL, makeFixture, type Fixture } from '../server/http/fixture.js';

const pexec = promisify(execFile);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const CLI = join(repoRoot(), 'dist/server/cli/main.js');

let fx: Fixture;
let proc: ChildProcess;
let port: number;
let base: string;
let logLines: string[] = [];
const TOKEN = 'e2e-token';

async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number } = {}): Promise<string> {
  try {
    const r = await pexec(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeout ?? 60_000, maxBuffer: 64 << 20 });
    return r.stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? err.message).trim().split('\n').slice(-4).join(' | ')}`);
  }
}

/** Starts `airlock serve` on a free port; resolves once it printed its address. */
export async function startServe(cacheDir: string, dir: string, extra: string[] = []): Promise<{ proc: ChildProcess; port: number; lines: string[] }> {
  mkdirSync(dir, { recursive: true });
  const cfg = join(dir, 'airlock.yml');
  writeFileSync(cfg, `cache_dir: ${cacheDir}\nadmin_token: ${TOKEN}\n`);
  const child = spawn(process.execPath, [CLI, 'serve', '--config', cfg, '--listen', '127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  const p = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`airlock serve did not start: ${lines.join('\n')}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        const m = /"address":"https?:\/\/[^"]*:(\d+)"/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString().trim()}`));
    child.on('exit', (code) => reject(new Error(`airlock serve exited ${code}: ${lines.join('\n')}`)));
  });
  return { proc: child, port: p, lines };
}

function rss(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0; // gone already: the sampler runs on a timer and must never throw
  }
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build (scripts/test.sh does)`);
  // big.bin larger than loopback socket buffers, so a client that never reads really stalls the server
  fx = await makeFixture({ bigSize: 24 * 1024 * 1024 });
  await fx.store.close(); // the server opens its own read-only store, as in production
  const s = await startServe(join(fx.dir, 'cache'), fx.dir, ['--grace', '20']);
  proc = s.proc;
  port = s.port;
  logLines = s.lines;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  if (proc && proc.exitCode === null) {
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
  }
  if (fx) await rm(fx.dir, { recursive: true, force: true });
});

describe('skopeo against airlock serve', () => {
  it('copies the image to oci: and docker-archive:, digests equal; pull by digest works', async () => {
    const out = join(fx.dir, 'skopeo');
    mkdirSync(out, { recursive: true });
    const src = `docker://127.0.0.1:${port}/demo/app:1.0`;
    await run('skopeo', ['copy', '--src-tls-verify=false', src, `oci:${out}/oci:1.0`]);
    const index = JSON.parse(readFileSync(join(out, 'oci/index.json'), 'utf8'));
    expect(index.manifests[0].digest).toBe(`sha256:${fx.imageDigest}`);
    // every blob skopeo wrote is byte-identical to the umoci original
    for (const f of readdirSync(join(out, 'oci/blobs/sha256'))) {
      expect(sha(readFileSync(join(out, 'oci/blobs/sha256', f)))).toBe(f);
      expect(fx.blobFiles.has(f)).toBe(true);
    }
    await run('skopeo', ['copy', '--src-tls-verify=false', src, `docker-archive:${out}/img.tar:demo/app:1.0`]);
    const listing = await run('tar', ['-xOf', join(out, 'img.tar'), 'manifest.json']);
    const config = fx.manifest.artifacts.find((a) => a.kind === 'oci-image');
    expect(config?.kind).toBe('oci-image');
    const configHex = config!.kind === 'oci-image' ? config!.blobs[0]!.sha256 : '';
    expect(JSON.parse(listing)[0].Config).toContain(configHex);
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://127.0.0.1:${port}/demo/app@sha256:${fx.imageDigest}`, `oci:${out}/bydigest`]);
    const idx2 = JSON.parse(readFileSync(join(out, 'bydigest/index.json'), 'utf8'));
    expect(idx2.manifests[0].digest).toBe(`sha256:${fx.imageDigest}`);
    const inspect = JSON.parse(await run('skopeo', ['inspect', '--tls-verify=false', src]));
    expect(inspect.Digest).toBe(`sha256:${fx.imageDigest}`);
  });
});

describe('apt-get and dpkg against the flat repository', () => {
  it('updates, downloads hello, and dpkg --root installs it without touching the system', async () => {
    const R = join(fx.dir, 'aptroot');
    for (const d of ['etc/apt/apt.conf.d', 'etc/apt/preferences.d', 'etc/apt/sources.list.d', 'etc/apt/trusted.gpg.d', 'var/lib/apt/lists/partial',
      'var/cache/apt/archives/partial', 'var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'var/log/apt', 'dl']) {
      mkdirSync(join(R, d), { recursive: true });
    }
    writeFileSync(join(R, 'var/lib/dpkg/status'), '');
    writeFileSync(join(R, 'etc/apt/sources.list'), `deb [trusted=yes] ${base}/apt/3.6.2 ./\n`);
    writeFileSync(join(R, 'apt.conf'), [
      `Dir "${R}/";`, `Dir::State::status "${R}/var/lib/dpkg/status";`, 'APT::Sandbox::User "root";', 'Acquire::Languages "none";',
      'Acquire::http::Proxy "false";', '',
    ].join('\n'));
    const env = { ...process.env, APT_CONFIG: join(R, 'apt.conf'), http_proxy: '', HTTP_PROXY: '' };
    const upd = await run('apt-get', ['update'], { env });
    expect(upd).not.toMatch(/^(Err|W):/m);
    await run('apt-get', ['download', 'hello'], { env, cwd: join(R, 'dl') });
    const debs = readdirSync(join(R, 'dl')).filter((f) => f.endsWith('.deb'));
    expect(debs).toEqual(['hello_2.10-3_amd64.deb']);
    const hello = fx.manifest.artifacts.find((a) => a.kind === 'deb' && a.package === 'hello')!;
    expect(sha(readFileSync(join(R, 'dl', debs[0]!)))).toBe(hello.sha256);
    const D = join(fx.dir, 'root');
    mkdirSync(join(D, 'var/lib/dpkg/info'), { recursive: true });
    mkdirSync(join(D, 'var/lib/dpkg/updates'), { recursive: true });
    mkdirSync(join(D, 'var/log'), { recursive: true });
    writeFileSync(join(D, 'var/lib/dpkg/status'), '');
    await run('dpkg', [`--root=${D}`, `--log=${D}/var/log/dpkg.log`, '--force-depends', '--force-not-root', '-i', join(R, 'dl', debs[0]!)]);
    expect(existsSync(join(D, 'usr/bin/hello'))).toBe(true);
    expect(readFileSync(join(D, 'var/log/dpkg.log'), 'utf8')).toMatch(/status installed hello:amd64 2\.10-3/);
  });
});

describe('curl', () => {
  const curl = (args: string[]): Promise<string> =>
    run('curl', ['-sS', ...(args.includes('-o') ? [] : ['-o', '/dev/null']), '-w', '%{http_code}', ...args]);

  it('Range, HEAD, 304, 404, 416', async () => {
    const file = `${base}/files/3.6.2/components/big.bin`;
    const big = readFileSync(fx.local.get('components/big.bin')!);
    const partFile = join(fx.dir, 'part.bin');
    expect(await curl(['-r', '1000-1999', '-o', partFile, file])).toBe('206');
    expect(readFileSync(partFile).equals(big.subarray(1000, 2000))).toBe(true);
    const head = await run('curl', ['-sS', '-I', file]);
    expect(head).toMatch(new RegExp(`content-length: ${big.length}`, 'i'));
    expect(head).toMatch(/cache-control: public, max-age=31536000, immutable/i);
    const etag = /etag: (.*)\r/i.exec(head)![1]!;
    expect(await curl(['-H', `If-None-Match: ${etag}`, file])).toBe('304');
    expect(await curl([`${base}/files/3.6.2/nope`])).toBe('404');
    expect(await curl(['-r', `${big.length + 10}-`, file])).toBe('416');
  });

  it('proxy mode: a staged URL answers with no upstream; others 403; CONNECT refused', async () => {
    const got = join(fx.dir, 'proxied.tgz');
    expect(await curl(['-x', base, '-o', got, FILE_URL])).toBe('200');
    expect(sha(readFileSync(got))).toBe(fx.manifest.artifacts.find((a) => a.path === 'components/app.tgz')!.sha256);
    expect(await curl(['-x', base, '-r', '0-99', BIG_URL])).toBe('206');
    expect(await curl(['-x', base, 'http://files.upstream.test/not-staged.tgz'])).toBe('403');
    const connect = await run('curl', ['-sS', '-p', '-x', base, '-o', '/dev/null', '-w', '%{http_connect}', 'http://files.upstream.test/x']).catch((e: Error) => e.message);
    expect(String(connect)).toMatch(/405/);
  });
});

describe('hostile requests', () => {
  it('huge headers → 431, absurd ranges, malformed digests, traversal; server stays healthy', async () => {
    expect(await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', `X-Big: ${'a'.repeat(64 * 1024)}`, `${base}/healthz`])).toBe('431');
    for (const r of ['bytes=-', 'bytes=5-1', 'bytes=0-1,' + '2-3,'.repeat(500) + '4-5', 'kilobytes=0-1', 'bytes=18446744073709551616-']) {
      const code = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Range: ${r}`, `${base}/files/3.6.2/components/app.tgz`]);
      expect(['200', '206', '416'], r).toContain(code);
    }
    for (const p of ['/blobs/sha256/zz', `/blobs/sha256/${'g'.repeat(64)}`, '/v2/demo/app/blobs/md5:abc', '/files/3.6.2/%2e%2e/%2e%2e/etc/passwd', '/apt/3.6.2/..%2f..%2fetc%2fshadow']) {
      const code = await run('curl', ['-sS', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', `${base}${p}`]);
      expect(code, p).toMatch(/^4\d\d$/);
    }
    const garbage = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('GARBAGE / HTTP/9.9\r\n\r\n'));
      let d = '';
      s.on('data', (b) => (d += b.toString()));
      s.on('close', () => resolve(d));
      s.on('error', () => resolve(d));
    });
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    expect(await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${base}/healthz`])).toBe('200');
  });

  it('a client that never reads is dropped after the idle timeout, and others are served meanwhile', async () => {
    const slow = await startServe(join(fx.dir, 'cache'), join(fx.dir, 'slow-srv'), ['--idle-timeout', '2']);
    try {
      const s = net.connect(slow.port, '127.0.0.1');
      s.pause(); // never read
      s.on('error', () => {});
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.write('GET /files/3.6.2/components/big.bin HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${slow.port}/healthz`])).toBe('200');
      // the server gives up on it (its log line says aborted) well before the test's own limit
      const t0 = Date.now();
      while (!slow.lines.some((l) => l.includes('"aborted":true') && l.includes('big.bin')) && Date.now() - t0 < 15_000) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(slow.lines.some((l) => l.includes('"aborted":true') && l.includes('big.bin'))).toBe(true);
      const metrics = await run('curl', ['-sS', `http://127.0.0.1:${slow.port}/metrics`]);
      expect(metrics).toMatch(/^airlock_http_requests_in_flight 1$/m); // only the /metrics request itself
      s.destroy();
    } finally {
      slow.proc.kill('SIGKILL');
    }
  });
});

describe('load', () => {
  it('200 concurrent clients for a bounded time, mixing big and small blobs: 0 errors, RSS bounded', async () => {
    const seconds = Number(process.env.AIRLOCK_LOAD_SECONDS ?? 20);
    const urls = [
      { path: '/files/3.6.2/components/big.bin', size: readFileSync(fx.local.get('components/big.bin')!).length },
      { path: '/files/3.6.2/components/app.tgz', size: readFileSync(fx.local.get('components/app.tgz')!).length },
      ...[...fx.blobFiles].map(([hex, f]) => ({ path: `/blobs/sha256/${hex}`, size: readFileSync(f).length })),
    ];
    const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
    const deadline = Date.now() + seconds * 1000;
    let ok = 0;
    let bytes = 0;
    const errors: string[] = [];
    let peak = rss(proc.pid!);
    const sampler = setInterval(() => (peak = Math.max(peak, rss(proc.pid!))), 250);
    const one = (u: { path: string; size: number }): Promise<void> =>
      new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: u.path, agent }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => {
            if (res.statusCode === 200 && n === u.size) ok++;
            else errors.push(`${u.path}: ${res.statusCode} ${n}/${u.size}`);
            bytes += n;
            resolve();
          });
          res.on('error', (e) => (errors.push(`${u.path}: ${e.message}`), resolve()));
        });
        req.on('error', (e) => (errors.push(`${u.path}: ${e.message}`), resolve()));
      });
    await Promise.all(
      Array.from({ length: 200 }, async (_, c) => {
        for (let i = c; Date.now() < deadline; i++) await one(i % 8 === 0 ? urls[0]! : urls[1 + (i % (urls.length - 1))]!);
      }),
    );
    clearInterval(sampler);
    agent.destroy();
    console.log(`load: ${ok} responses, ${(bytes / 2 ** 20).toFixed(0)} MiB in ${seconds}s, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
    if (errors.length) console.log(`load errors: ${errors.length}`, errors.slice(0, 3), logLines.filter((l) => l.includes('aborted')).slice(0, 3));
    expect(errors.slice(0, 5)).toEqual([]);
    expect(ok).toBeGreaterThan(200);
    expect(peak).toBeLessThan(300 * 2 ** 20);
    expect(await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', `${base}/healthz`])).toBe('200');
  }, 120_000);
});

describe('graceful shutdown', () => {
  it('SIGTERM lets a download in flight finish, then exits 0', async () => {
    const out = join(fx.dir, 'slow.bin');
    const big = readFileSync(fx.local.get('components/big.bin')!);
    // 8 MiB at 4 MiB/s: still running when the signal arrives
    const dl = run('curl', ['-sS', '--limit-rate', '4M', '-r', '0-8388607', '-o', out, '-w', '%{http_code}', `${base}/files/3.6.2/components/big.bin`]);
    await new Promise((r) => setTimeout(r, 700));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    expect(await dl).toBe('206');
    expect(readFileSync(out).equals(big.subarray(0, 8388608))).toBe(true);
    expect(await exited).toBe(0);
    expect(logLines.some((l) => l.includes('shutting down'))).toBe(true);
  }, 60_000);
});
