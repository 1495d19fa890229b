/**
 * `airlock serve` (the built CLI, as a process) follows the cache when it
 * moves, with no restart: `airlock relocate` hands it over by itself (SIGHUP,
 * then waits for it before removing the old copy), and a SIGHUP after an
 * edit of cache_dir does the same. A download in flight across the move
 * finishes with the right bytes from the file it opened.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openStore } from '../../../../storage/index.js';
import { fileArtifact, makeRelease, sha } from '../../../storage/fixtures.js';
import { AIRLOCK, cleanEnv, runCli } from '../../../support/cli.js';

const BIG = randomBytes(48 * 1024 * 1024);
const SMALL = Buffer.from('a small file, asked for after the move\n');

let dir: string;
let cfg: string;
let serve: ChildProcess;
let url: string;
let log = '';

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; serve said:\n${log.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-follow-'));
  const store = await openStore({ cacheDir: join(dir, 'a'), write: true });
  for (const b of [BIG, SMALL]) await store.ingestStream({ sha256: sha(b), size: b.length }, Readable.from([b]));
  await store.putRelease(makeRelease('1.0.0', [fileArtifact('big.bin', BIG), fileArtifact('small.txt', SMALL)]));
  await store.close();
  cfg = join(dir, 'airlock.yml');
  await writeFile(cfg, `cache_dir: ${join(dir, 'a')}\n`);
  serve = spawn(process.execPath, [AIRLOCK, 'serve', '--config', cfg, '--listen', '127.0.0.1:0'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  serve.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  serve.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  await waitFor('serve listening', () => /"address":"http:\/\/[^"]+"/.test(log));
  url = /"address":"(http:\/\/[^"]+)"/.exec(log)![1]!;
}, 60_000);

afterAll(async () => {
  if (serve && serve.exitCode === null) {
    const gone = new Promise((r) => serve.once('exit', r));
    serve.kill('SIGTERM');
    await gone;
  }
  await rm(dir, { recursive: true, force: true });
});

/** GET, whole body */
async function get(path: string): Promise<{ status: number; body: Buffer }> {
  const r = await fetch(`${url}${path}`);
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

/** A GET whose body is read up to its first chunk, then held: the server's file stays open, its socket full. */
function heldDownload(path: string): Promise<{ resume(): Promise<{ status: number; sha256: string; bytes: number }> }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${url}${path}`, { highWaterMark: 64 * 1024 } as http.RequestOptions, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.once('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
        res.pause();
        resolve({
          resume: () =>
            new Promise((done, fail) => {
              res.on('data', (more: Buffer) => {
                hash.update(more);
                bytes += more.length;
              });
              res.on('end', () => done({ status: res.statusCode ?? 0, sha256: hash.digest('hex'), bytes }));
              res.on('error', fail);
              res.resume();
            }),
        });
      });
    });
    req.on('error', reject);
  });
}

const servingEntries = (cacheDir: string): string[] => (existsSync(join(cacheDir, 'serving')) ? readdirSync(join(cacheDir, 'serving')) : []);

it('airlock relocate hands a running serve over to the new folder: a download in flight finishes with the right bytes, new requests are answered from there, no restart', async () => {
  expect(servingEntries(join(dir, 'a'))).toEqual([`${serve.pid}.json`]);
  const held = await heldDownload(`/blobs/sha256/${sha(BIG)}`);

  const moved = await runCli(AIRLOCK, ['relocate', join(dir, 'b'), '--config', cfg, '--json']);
  expect(moved.code, moved.stderr + moved.stdout).toBe(0);
  const result = JSON.parse(moved.stdout.trim().split('\n').pop()!) as { ok: boolean; servers: { moved: number[]; stuck: number[] }; oldRemoved: boolean };
  expect(result.ok).toBe(true);
  expect(result.servers).toEqual({ moved: [serve.pid], stuck: [] });
  expect(result.oldRemoved).toBe(true);
  expect(moved.stdout).toContain(`"handOver":"airlock serve (pid ${serve.pid}) now serves from ${join(dir, 'b')}: no restart needed"`);
  // the old copy is gone: nothing can be answered from it any more
  expect(existsSync(join(dir, 'a'))).toBe(false);
  expect(servingEntries(join(dir, 'b'))).toEqual([`${serve.pid}.json`]);
  expect(log).toMatch(new RegExp(`"from":"${join(dir, 'a')}","to":"${join(dir, 'b')}","reason":"SIGHUP".*cache_dir moved`));

  // new requests: from the new folder
  const small = await get(`/files/1.0.0/small.txt`);
  expect(small.status).toBe(200);
  expect(small.body.equals(SMALL)).toBe(true);
  const releases = await get('/releases');
  expect(releases.status).toBe(200);
  expect(releases.body.toString()).toContain('"1.0.0"');
  const again = await get(`/blobs/sha256/${sha(BIG)}`);
  expect(again.status).toBe(200);
  expect(sha(again.body)).toBe(sha(BIG));

  // the download that started before the move: every byte, the right ones
  const done = await held.resume();
  expect(done).toEqual({ status: 200, sha256: sha(BIG), bytes: BIG.length });
  expect(serve.exitCode).toBeNull();
}, 90_000);

it('SIGHUP after cache_dir was changed in the config: serve answers from the new folder and leaves the old one', async () => {
  await cp(join(dir, 'b'), join(dir, 'c'), { recursive: true, filter: (src) => !src.includes(`${join(dir, 'b', 'serving')}`) });
  await writeFile(cfg, `cache_dir: ${join(dir, 'c')}\n`);
  const held = await heldDownload(`/blobs/sha256/${sha(BIG)}`);
  serve.kill('SIGHUP');
  await waitFor('serve moved to c', () => servingEntries(join(dir, 'c')).length === 1 && servingEntries(join(dir, 'b')).length === 0);
  // b can go now: c answers
  await rm(join(dir, 'b'), { recursive: true, force: true });
  const small = await get(`/files/1.0.0/small.txt`);
  expect(small.status).toBe(200);
  expect(small.body.equals(SMALL)).toBe(true);
  expect(await held.resume()).toEqual({ status: 200, sha256: sha(BIG), bytes: BIG.length });

  // a SIGHUP with nothing changed keeps serving from the same folder
  serve.kill('SIGHUP');
  await waitFor('the unchanged reload logged', () => /reload: cache_dir unchanged/.test(log));
  expect((await get(`/files/1.0.0/small.txt`)).status).toBe(200);
  expect(servingEntries(join(dir, 'c'))).toEqual([`${serve.pid}.json`]);
}, 60_000);
