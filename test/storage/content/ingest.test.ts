import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fsBackend } from '../../../storage/backend/fs.js';
import { ingestFromUrls, ingestStream, type IngestContext } from '../../../storage/content/ingest.js';
import { memoryFetcher } from '../../../storage/fetch/memory.js';
import { blobPath, partialPath } from '../../../storage/paths.js';
import type { Fetcher } from '../../../storage/types.js';
import { ref, sha } from '../backend-suite.js';

let dir: string;
let ctx: IngestContext;
const FAST = { backoffMs: 1 };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'airlock-ingest-'));
  ctx = { root: dir, backend: fsBackend(dir), inflight: new Map() };
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const body = randomBytes(300_000);
const want = ref(body);
const U1 = 'http://a.example/x';
const U2 = 'http://b.example/x';

describe('ingestFromUrls', () => {
  it('downloads, verifies, stores read-only; a second call is fetched:false', async () => {
    const f = memoryFetcher({ [U1]: body });
    const seen: number[] = [];
    const r = await ingestFromUrls(ctx, want, [U1], f, { onProgress: (p) => seen.push(p.bytes) });
    expect(r).toMatchObject({ fetched: true, transferred: body.length, resumedFrom: 0 });
    expect(seen.at(-1)).toBe(body.length);
    expect((await readFile(blobPath(dir, want.sha256))).equals(body)).toBe(true);
    await expect(stat(partialPath(dir, want.sha256))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await ingestFromUrls(ctx, want, [U1], f)).toMatchObject({ fetched: false, transferred: 0 });
  });

  it('resumes after resets with Range from the partial length', async () => {
    const f = memoryFetcher({ [U1]: body }, { [U1]: [{ kind: 'reset', after: 100_000 }, { kind: 'reset', after: 100_000 }] });
    const retries: number[] = [];
    const r = await ingestFromUrls(ctx, want, [U1], f, { ...FAST, onRetry: (i) => retries.push(i.attempt) });
    expect(r.transferred).toBe(body.length);
    expect(f.calls.map((c) => c.offset)).toEqual([0, 100_000, 200_000]);
    expect(retries.length).toBe(2);
  });

  it('a partial left by an earlier run is re-hashed and continued; the wire carries only the rest', async () => {
    await mkdir(join(dir, 'partial'), { recursive: true });
    await writeFile(partialPath(dir, want.sha256), body.subarray(0, 250_000));
    const f = memoryFetcher({ [U1]: body });
    const r = await ingestFromUrls(ctx, want, [U1], f);
    expect(r).toMatchObject({ resumedFrom: 250_000, transferred: 50_000 });
    expect(f.calls).toEqual([{ url: U1, offset: 250_000, sent: 50_000 }]);
    expect((await readFile(blobPath(dir, want.sha256))).equals(body)).toBe(true);
  });

  it('an upstream that ignores Range makes a clean restart from 0', async () => {
    await mkdir(join(dir, 'partial'), { recursive: true });
    await writeFile(partialPath(dir, want.sha256), body.subarray(0, 1000));
    const f = memoryFetcher({ [U1]: body }, { [U1]: [{ kind: 'ignore-range' }] });
    const r = await ingestFromUrls(ctx, want, [U1], f);
    expect(r).toMatchObject({ resumedFrom: 0, transferred: body.length });
    expect((await readFile(blobPath(dir, want.sha256))).equals(body)).toBe(true);
  });

  it('wrong bytes: partial deleted, EINTEGRITY expected vs found, never stored; the next URL is tried', async () => {
    const bad = Buffer.from(body);
    bad[5] ^= 1;
    const f = memoryFetcher({ [U1]: bad, [U2]: body });
    const r = await ingestFromUrls(ctx, want, [U1, U2], f, FAST);
    expect(r.fetched).toBe(true);
    expect(f.calls.map((c) => c.url)).toEqual([U1, U2]); // not retried on U1

    const only = { root: dir, backend: fsBackend(dir), inflight: new Map() };
    const other = ref(randomBytes(10));
    const err = await ingestFromUrls(only, other, [U1], memoryFetcher({ [U1]: Buffer.alloc(10) }), FAST).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EINTEGRITY', details: { expected: other, found: { sha256: sha(Buffer.alloc(10)), size: 10 } } });
    expect(await only.backend.stat(other.sha256)).toBeNull();
    await expect(stat(partialPath(dir, other.sha256))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a longer body is cut at size+1 and refused', async () => {
    const small = ref('abc');
    const err = await ingestFromUrls(ctx, small, [U1], memoryFetcher({ [U1]: Buffer.from('abcdef') }), FAST).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EINTEGRITY' });
    expect(await ctx.backend.stat(small.sha256)).toBeNull();
  });

  it('5xx is retried with backoff, 404 moves on; when all fail the error says so (EUPSTREAM)', async () => {
    const f = memoryFetcher({ [U2]: body }, { [U2]: [{ kind: 'status', status: 503 }, { kind: 'status', status: 502 }] });
    const r = await ingestFromUrls(ctx, want, [U1, U2], f, FAST);
    expect(r.fetched).toBe(true);
    expect(f.calls.map((c) => c.url)).toEqual([U1, U2, U2, U2]);

    const c2 = { root: dir, backend: fsBackend(dir), inflight: new Map() };
    const other = ref('zzz');
    const down = memoryFetcher({}, { [U1]: Array(10).fill({ kind: 'status', status: 500 }) });
    const err = await ingestFromUrls(c2, other, [U1], down, { ...FAST, retries: 3 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EUPSTREAM' });
    expect(down.calls.length).toBe(3);
  });

  it('a stall is retried', async () => {
    let n = 0;
    const f: Fetcher = {
      async fetch(url, o) {
        n++;
        if (n === 1) return { offset: o.offset, stream: new Readable({ read() {} }) };
        return memoryFetcher({ [U1]: body }).fetch(url, o);
      },
    };
    const r = await ingestFromUrls(ctx, want, [U1], f, { ...FAST, stallMs: 50 });
    expect(r.fetched).toBe(true);
    expect(n).toBe(2);
  });

  it('concurrent ingests of one digest are coalesced into one download', async () => {
    const f = memoryFetcher({ [U1]: body });
    const rs = await Promise.all([1, 2, 3].map(() => ingestFromUrls(ctx, want, [U1], f)));
    expect(f.calls.length).toBe(1);
    expect(rs.every((r) => r.digest === want.sha256)).toBe(true);
  });

  it('abort stops cleanly and leaves the partial for resume', async () => {
    const ac = new AbortController();
    const f = memoryFetcher({ [U1]: body }, { [U1]: [{ kind: 'reset', after: 120_000 }] });
    const err = await ingestFromUrls(ctx, want, [U1], f, {
      backoffMs: 10_000,
      signal: ac.signal,
      onRetry: () => setTimeout(() => ac.abort(), 5),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EUPSTREAM', details: { aborted: true } });
    expect((await stat(partialPath(dir, want.sha256))).size).toBe(120_000);
    expect(await ctx.backend.stat(want.sha256)).toBeNull();
    await expect(ctx.backend.read(want.sha256)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const r = await ingestFromUrls(ctx, want, [U1], f);
    expect(r).toMatchObject({ resumedFrom: 120_000, transferred: body.length - 120_000 });
  });
});

describe('ingestStream', () => {
  it('stores a verified stream and refuses a wrong one', async () => {
    expect(await ingestStream(ctx, want, Readable.from([body]))).toMatchObject({ fetched: true });
    expect(await ingestStream(ctx, want, Readable.from([body]))).toMatchObject({ fetched: false });
    const other = ref('abc');
    await expect(ingestStream(ctx, other, Readable.from([Buffer.from('abd')]))).rejects.toMatchObject({ code: 'EINTEGRITY' });
    expect(await ctx.backend.stat(other.sha256)).toBeNull();
  });
});
