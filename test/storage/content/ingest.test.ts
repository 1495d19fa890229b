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
import { AirlockError } from '../../../manifests/errors.js';

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

describe('ingestFromUrls against slow, lying and hostile URLs', () => {
  /** `at` bytes at once, then one byte every `everyMs`: never a stall, never done */
  const trickler = (whole: Buffer, at: number, everyMs: number): Fetcher => ({
    async fetch(_url, o) {
      let pos = o.offset;
      let timer: NodeJS.Timeout | null = null;
      const stream = new Readable({
        read() {
          if (pos < at) {
            const n = at - pos;
            this.push(whole.subarray(pos, at));
            pos += n;
            return;
          }
          timer ??= setInterval(() => {
            if (pos >= whole.length) return void this.push(null);
            this.push(whole.subarray(pos, pos + 1));
            pos += 1;
          }, everyMs);
        },
        destroy(err, cb) {
          if (timer) clearInterval(timer);
          cb(err);
        },
      });
      return { offset: o.offset, stream };
    },
  });
  const both = (slow: Fetcher, fast: Fetcher): Fetcher => ({ fetch: (url, o) => (url === U1 ? slow.fetch(url, o) : fast.fetch(url, o)) });

  it('a trickling URL is given up after one rate window below min_rate; the next URL finishes from the good bytes', async () => {
    const fast = memoryFetcher({ [U2]: body });
    const t0 = Date.now();
    const r = await ingestFromUrls(ctx, want, [U1, U2], both(trickler(body, 50_000, 20), fast), { ...FAST, stallMs: 2000, minRate: 50_000, rateWindowMs: 400 });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r).toMatchObject({ fetched: true, url: U2, failed: [{ url: U1, code: 'EUPSTREAM', attempts: 1 }] });
    expect(r.failed![0]!.reason).toMatch(/too slow/);
    // the trickled bytes were kept: U2 was asked for the rest only
    expect(fast.calls[0]!.offset).toBeGreaterThanOrEqual(50_000);
    expect((await readFile(blobPath(dir, want.sha256))).equals(body)).toBe(true);
  }, 15_000);

  it('the only URL trickling is retried a bounded number of times, then the run fails naming it', async () => {
    const t0 = Date.now();
    const err = await ingestFromUrls(ctx, want, [U1], trickler(body, 1000, 20), { ...FAST, retries: 2, stallMs: 2000, minRate: 50_000, rateWindowMs: 300 }).catch(
      (e: unknown) => e,
    );
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toMatchObject({ code: 'EUPSTREAM', details: { urls: [{ url: U1, attempts: 2 }] } });
    expect(String((err as Error).message)).toMatch(/every URL failed \(http:\/\/a\.example\/x: too slow/);
  }, 15_000);

  it('progress does not buy endless attempts: at most maxAttempts requests per URL, then the next URL', async () => {
    // every answer sends 1000 more bytes, then resets: progress each time, never done
    const f = memoryFetcher({ [U1]: body, [U2]: body }, { [U1]: Array.from({ length: 400 }, () => ({ kind: 'reset' as const, after: 1000 })) });
    const r = await ingestFromUrls(ctx, want, [U1, U2], f, { ...FAST, maxAttempts: 4 });
    expect(f.calls.filter((c) => c.url === U1)).toHaveLength(4);
    expect(r).toMatchObject({ url: U2, failed: [{ url: U1, attempts: 4 }] });
    expect(f.calls.find((c) => c.url === U2)!.offset).toBe(4000);
  });

  it('a lying first URL (wrong bytes, then gone) does not get the good second URL blamed: it is asked again from 0', async () => {
    const bad = Buffer.from(body.map((b) => b ^ 0xff));
    const f = memoryFetcher({ [U1]: bad, [U2]: body }, { [U1]: [{ kind: 'reset', after: 100_000 }, { kind: 'status', status: 404 }] });
    const retries: string[] = [];
    const r = await ingestFromUrls(ctx, want, [U1, U2], f, { ...FAST, onRetry: (i) => retries.push(`${i.url} ${i.error.code}`) });
    expect(r).toMatchObject({ fetched: true, url: U2, failed: [{ url: U1, code: 'EUPSTREAM' }] });
    expect(f.calls.map((c) => `${c.url}@${c.offset}`)).toEqual([`${U1}@0`, `${U1}@100000`, `${U2}@100000`, `${U2}@0`]);
    expect(retries).toEqual([`${U1} EUPSTREAM`, `${U2} EINTEGRITY`]);
    expect((await readFile(blobPath(dir, want.sha256))).equals(body)).toBe(true);
  });

  it('a partial from an earlier run that fails the digest is discarded and the same URL asked once from 0 before it is blamed', async () => {
    await mkdir(join(dir, 'partial'), { recursive: true });
    await writeFile(partialPath(dir, want.sha256), Buffer.alloc(1000, 7));
    const f = memoryFetcher({ [U1]: body });
    const r = await ingestFromUrls(ctx, want, [U1], f, FAST);
    expect(r).toMatchObject({ fetched: true, url: U1, failed: [] });
    expect(f.calls.map((c) => c.offset)).toEqual([1000, 0]);

    // the URL itself lies: asked again from 0, it fails again, and now it is blamed
    const c2 = { root: dir, backend: fsBackend(dir), inflight: new Map() };
    const other = ref(randomBytes(5000));
    await writeFile(partialPath(dir, other.sha256), Buffer.alloc(1000, 7));
    const liar = memoryFetcher({ [U1]: randomBytes(5000) });
    const err = await ingestFromUrls(c2, other, [U1], liar, FAST).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EINTEGRITY', details: { urls: [{ url: U1, code: 'EINTEGRITY' }] } });
    expect(liar.calls.map((c) => c.offset)).toEqual([1000, 0]);
    await expect(stat(partialPath(dir, other.sha256))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a non-retryable answer (retryable: false, or a 4xx) moves on at once', async () => {
    const f: Fetcher = {
      async fetch(url, o) {
        if (url === U1) throw new AirlockError('EUPSTREAM', `${url}: refused a redirect to an unsupported scheme`, { url, retryable: false });
        return memoryFetcher({ [U2]: body }).fetch(url, o);
      },
    };
    const r = await ingestFromUrls(ctx, want, [U1, U2], f, { retries: 5, backoffMs: 10_000 });
    expect(r).toMatchObject({ url: U2, failed: [{ url: U1, attempts: 1 }] });
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
