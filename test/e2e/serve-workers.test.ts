/**
 * `airlock serve --workers 2` as a process: two workers under one primary on
 * one port, /metrics summed over both, SIGTERM lets a slow download finish in
 * its worker and then every process exits 0, a port in use is exit 2.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../../scripts/world/cache.js';
import { openStore } from '../../storage/index.js';

const CLI = join(repoRoot(), 'dist/server/cli/main.js');
let dir: string;
let body: Buffer;
let hex: string;

function serve(extra: string[]): { proc: ChildProcess; port: Promise<number>; out: () => string; exit: Promise<number | null> } {
  let out = '';
  const proc = spawn(process.execPath, [CLI, 'serve', '--cache-dir', join(dir, 'cache'), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const port = new Promise<number>((resolve, reject) => {
    const timer = setInterval(() => {
      const m = /"address":"http:\/\/[^"]*:(\d+)"/.exec(out);
      if (m) {
        clearInterval(timer);
        resolve(Number(m[1]));
      } else if (proc.exitCode !== null) {
        clearInterval(timer);
        reject(new Error(`serve exited: ${out}`));
      }
    }, 20);
  });
  port.catch(() => {}); // awaited only by the tests that expect it to listen
  return { proc, port, out: () => out, exit };
}

const children = (pid: number): number[] =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const s = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);

async function get(url: string): Promise<{ status: number; body: Buffer }> {
  const r = await fetch(url);
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-workers-'));
  body = randomBytes(4 * 1024 * 1024 + 3);
  hex = createHash('sha256').update(body).digest('hex');
  const store = await openStore({ cacheDir: join(dir, 'cache'), write: true });
  await store.ingestStream({ sha256: hex, size: body.length }, Readable.from([body]));
  await store.close();
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('airlock serve --workers', () => {
  it('two workers on one port, /metrics summed over both, graceful SIGTERM, exit 0', async () => {
    const s = serve(['--listen', '127.0.0.1:0', '--workers', '2']);
    try {
      const port = await s.port;
      // both workers listening (each logs its address)
      for (let i = 0; i < 100 && (s.out().match(/"msg":"listening"/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      const workers = children(s.proc.pid!);
      expect(workers).toHaveLength(2);
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 10; i++) {
        const r = await get(`${base}/blobs/sha256/${hex}`);
        expect(r.status).toBe(200);
        expect(r.body.equals(body)).toBe(true);
      }
      // whichever worker answers, the count is all ten (connections go round-robin between the two)
      const text = (await get(`${base}/metrics`)).body.toString();
      expect(text).toMatch(/^airlock_http_requests_total\{route="blobs",method="GET",status="200"\} 10$/m);
      expect(text).toMatch(new RegExp(`^airlock_http_response_bytes_total\\{route="blobs"\\} ${10 * body.length}$`, 'm'));

      // a slow download in flight when SIGTERM comes is finished, then everything exits 0
      const slow = new Promise<number>((resolve, reject) => {
        http.get(`${base}/blobs/sha256/${hex}`, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            res.pause();
            setTimeout(() => res.resume(), 20);
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        }).on('error', reject);
      });
      await new Promise((r) => setTimeout(r, 300));
      s.proc.kill('SIGTERM');
      expect(await slow).toBe(body.length);
      expect(await s.exit).toBe(0);
      for (const w of workers) expect(() => process.kill(w, 0)).toThrow();
    } finally {
      s.proc.kill('SIGKILL');
    }
  }, 60_000);

  it('a port already in use: the workers cannot start, exit 2', async () => {
    const taken = http.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const s = serve(['--listen', `127.0.0.1:${port}`, '--workers', '2']);
    try {
      expect(await s.exit).toBe(2);
    } finally {
      s.proc.kill('SIGKILL');
      taken.close();
    }
  }, 30_000);

  it('--workers takes 1 to 64 or auto', async () => {
    const s = serve(['--listen', '127.0.0.1:0', '--workers', '0']);
    expect(await s.exit).toBe(2);
    expect(s.out()).toMatch(/--workers must be an integer from 1 to 64 or "auto"/);
  });
});
