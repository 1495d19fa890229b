/**
 * wait.ts and the cache pool's use of it, without a network or a clock:
 * which failures are a cache briefly away, how long each wait is (backoff,
 * jitter, Retry-After, the budget's end), and what is thrown when waiting is
 * over or was never the answer.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cachePool } from '../../client/caches.js';
import { loadNodeConfig } from '../../client/config.js';
import type { CacheClient } from '../../client/remote.js';
import { cacheWaiter, humanWait, transientAnswer } from '../../client/wait.js';
import type { Output } from '../../common/output.js';
import { AirlockError } from '../../manifests/errors.js';
import { retryAfter, statusError } from '../../storage/fetch/http.js';

/** an Output that keeps its warnings */
function recorder(): Output & { warnings: string[] } {
  const warnings: string[] = [];
  const noBar = { update() {}, increment() {}, stop() {} };
  return { json: false, warnings, note() {}, warn: (m) => warnings.push(m), event() {}, result() {}, failure() {}, progress: () => noBar };
}

/** a clock that moves only when the waiter sleeps */
function fakeClock(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 1_000_000;
  const slept: number[] = [];
  return { now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)), slept };
}

const refused = (url: string): AirlockError => new AirlockError('EUPSTREAM', `${url}: connect ECONNREFUSED 127.0.0.1:9`, { url, cause: 'ECONNREFUSED', retryable: true });

describe('transientAnswer: what is worth waiting out', () => {
  it.each([
    [statusError(503, 'http://c/x'), 'answered 503'],
    [statusError(502, 'http://c/x'), 'answered 502'],
    [statusError(504, 'http://c/x'), 'answered 504'],
    [refused('http://c/x'), 'refused the connection'],
    [new AirlockError('EUPSTREAM', 'reset', { cause: 'ECONNRESET', retryable: true }), 'reset the connection'],
    [new AirlockError('EUPSTREAM', 'short', { cause: 'short body', retryable: true }), 'closed the connection before the end of a body'],
  ])('%s → %s', (e, answer) => expect(transientAnswer(e)).toBe(answer));

  it.each([
    ['a 404 of a blob', statusError(404, 'http://c/x')],
    ['a 403', statusError(403, 'http://c/x')],
    ['a 500', statusError(500, 'http://c/x')],
    ['wrong bytes', new AirlockError('EINTEGRITY', 'wrong', { url: 'http://c/x' })],
    ['a stall', new AirlockError('EUPSTREAM', 'stalled', { cause: 'stall', retryable: true })],
    ['our own stop', new AirlockError('EUPSTREAM', 'aborted', { cause: 'ECONNRESET', aborted: true })],
    ['a protocol error', new AirlockError('EUPSTREAM', 'protocol', { cause: 'protocol error', retryable: false })],
  ])('%s is not', (_what, e) => expect(transientAnswer(e)).toBeNull());
});

describe('Retry-After', () => {
  it('seconds or an HTTP-date, into the details of a 503', () => {
    expect(retryAfter('7')).toBe(7000);
    expect(retryAfter(new Date(60_000).toUTCString(), 0)).toBe(60_000);
    expect(retryAfter('soon')).toBeNull();
    expect(retryAfter(undefined)).toBeNull();
    expect(statusError(503, 'http://c/x', { 'retry-after': '3' }).details.retryAfterMs).toBe(3000);
    expect(statusError(503, 'http://c/x', {}).details.retryAfterMs).toBeUndefined();
  });
});

describe('cacheWaiter', () => {
  it('waits with doubling, jittered steps, capped, one line each, and gives up at the budget with the last answer', async () => {
    const clock = fakeClock();
    const out = recorder();
    const w = cacheWaiter({ budgetMs: 60_000, out, firstMs: 1000, capMs: 8000, random: () => 1, ...clock });
    const e = statusError(503, 'http://cache:7070/releases/r/manifest');
    let thrown: unknown = null;
    for (let i = 0; i < 100 && thrown === null; i++) await w.wait(e, ['http://cache:7070']).catch((x: unknown) => (thrown = x));
    // random 1: the whole step; 1, 2, 4, 8, 8… then what is left of the minute
    expect(clock.slept.slice(0, 6)).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(clock.slept.reduce((a, b) => a + b, 0)).toBe(60_000);
    expect(out.warnings[0]).toBe('cache http://cache:7070 answered 503; trying again in 1 s (1m left)');
    expect(out.warnings[1]).toBe('cache http://cache:7070 answered 503; trying again in 2 s (59 s left)');
    expect(out.warnings).toHaveLength(clock.slept.length);
    expect(thrown).toBeInstanceOf(AirlockError);
    const err = thrown as unknown as AirlockError;
    expect(err.code).toBe('EUPSTREAM');
    expect(err.message).toMatch(/^http:\/\/cache:7070\/releases\/r\/manifest: upstream answered 503 \(the cache did not come back within 1m; /);
    expect(err.message).not.toContain('\n');
  });

  it('jitter keeps at least half the step', async () => {
    const clock = fakeClock();
    const w = cacheWaiter({ budgetMs: 60_000, out: recorder(), firstMs: 1000, capMs: 8000, random: () => 0, ...clock });
    for (let i = 0; i < 3; i++) await w.wait(refused('http://c:1/x'), ['http://c:1']);
    expect(clock.slept).toEqual([500, 1000, 2000]);
  });

  it("honours the cache's Retry-After, within the budget", async () => {
    const clock = fakeClock();
    const out = recorder();
    const w = cacheWaiter({ budgetMs: 10_000, out, random: () => 0.5, ...clock });
    const e = statusError(503, 'http://c:1/x', { 'retry-after': '7' });
    await w.wait(e, ['http://c:1']);
    await w.wait(e, ['http://c:1']);
    expect(clock.slept).toEqual([7000, 3000]);
    expect(out.warnings[0]).toBe('cache http://c:1 answered 503; trying again in 7 s (10 s left)');
    await expect(w.wait(e, ['http://c:1'])).rejects.toMatchObject({ code: 'EUPSTREAM' });
  });

  it('an answer from the cache gives the next outage the whole budget again', async () => {
    const clock = fakeClock();
    const w = cacheWaiter({ budgetMs: 3000, out: recorder(), firstMs: 2000, capMs: 2000, random: () => 1, ...clock });
    await w.wait(refused('http://c:1/x'), ['http://c:1']);
    await w.wait(refused('http://c:1/x'), ['http://c:1']);
    await expect(w.wait(refused('http://c:1/x'), ['http://c:1'])).rejects.toThrow(/did not come back within 3 s/);
    w.ok();
    await w.wait(refused('http://c:1/x'), ['http://c:1']);
    expect(clock.slept).toEqual([2000, 1000, 2000]);
  });

  it('throws what is not a moment away at once, and waits not at all with a budget of 0', async () => {
    const clock = fakeClock();
    const w = cacheWaiter({ budgetMs: 60_000, out: recorder(), ...clock });
    const missing = statusError(404, 'http://c:1/blobs/sha256/ab');
    await expect(w.wait(missing, ['http://c:1'])).rejects.toBe(missing);
    const none = cacheWaiter({ budgetMs: 0, out: recorder(), ...clock });
    const e = refused('http://c:1/x');
    await expect(none.wait(e, ['http://c:1'])).rejects.toBe(e);
    expect(clock.slept).toEqual([]);
  });

  it('humanWait', () => {
    expect([0, 600, 8000, 59_500, 60_000, 72_000, 3_600_000, 3_900_000].map(humanWait)).toEqual(['0 s', '1 s', '8 s', '1m', '1m', '1m 12s', '1h', '1h 5m']);
  });
});

describe('cachePool with a waiter', () => {
  const client = (base: string, answers: Array<AirlockError | string>): CacheClient & { asked: number } => {
    const c = {
      base,
      asked: 0,
      releases: async () => [],
      manifest: async () => {
        const a = answers[Math.min(c.asked++, answers.length - 1)]!;
        if (typeof a !== 'string') throw a;
        return Buffer.from(a);
      },
      blobUrl: (h: string) => `${base}/blobs/sha256/${h}`,
      fetcher: { fetch: () => Promise.reject(new Error('unused')) },
      close() {},
    };
    return c;
  };

  it('the next cache first; when every cache is away, the list again after a wait', async () => {
    const a = client('http://a:1', [refused('http://a:1/m'), refused('http://a:1/m'), 'from a']);
    const b = client('http://b:1', [statusError(503, 'http://b:1/m'), statusError(503, 'http://b:1/m')]);
    const clock = fakeClock();
    const out = recorder();
    const pool = cachePool(['http://a:1', 'http://b:1'], out, (base) => (base === a.base ? a : b), cacheWaiter({ budgetMs: 60_000, out, random: () => 1, ...clock }));
    const got = await pool.ask('the manifest', (c) => c.manifest('r'));
    expect(got.value.toString()).toBe('from a');
    expect([a.asked, b.asked]).toEqual([3, 2]);
    expect(out.warnings.filter((w) => w.includes('trying again in'))).toEqual([
      'cache http://b:1 answered 503; trying again in 1 s (1m left)',
      'cache http://b:1 answered 503; trying again in 2 s (59 s left)',
    ]);
  });

  it('a cache away and another without it: waits for the one away', async () => {
    const a = client('http://a:1', [statusError(503, 'http://a:1/m'), 'from a']);
    const b = client('http://b:1', [statusError(404, 'http://b:1/m')]);
    const clock = fakeClock();
    const out = recorder();
    const pool = cachePool(['http://a:1', 'http://b:1'], out, (base) => (base === a.base ? a : b), cacheWaiter({ budgetMs: 60_000, out, ...clock }));
    expect((await pool.ask('the manifest', (c) => c.manifest('r'))).value.toString()).toBe('from a');
    expect(out.warnings.some((w) => w.startsWith('cache http://a:1 answered 503; trying again'))).toBe(true);
  });

  it('a 404 from every cache is the answer: no wait', async () => {
    const a = client('http://a:1', [statusError(404, 'http://a:1/m')]);
    const clock = fakeClock();
    const pool = cachePool(['http://a:1'], recorder(), () => a, cacheWaiter({ budgetMs: 60_000, out: recorder(), ...clock }));
    await expect(pool.ask('the manifest', (c) => c.manifest('r'))).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(clock.slept).toEqual([]);
  });
});

describe('the wait budget in the config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-node-wait-config-'));
  const config = (text: string): string => {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, text);
    return file;
  };

  it('5 minutes by default; cache_wait as a duration; --wait-for-cache over it; 0 is no waiting', () => {
    expect(loadNodeConfig({}, dir, null).cacheWaitMs).toBe(300_000);
    expect(loadNodeConfig({ config: config('cache_wait: 10m\n') }, dir, null).cacheWaitMs).toBe(600_000);
    expect(loadNodeConfig({ config: config('cache_wait: 90\n') }, dir, null).cacheWaitMs).toBe(90_000);
    expect(loadNodeConfig({ config: config('cache_wait: 10m\n'), waitForCache: '2s' }, dir, null).cacheWaitMs).toBe(2000);
    expect(loadNodeConfig({ waitForCache: '0' }, dir, null).cacheWaitMs).toBe(0);
  });

  it('refuses what is not a duration, in one line naming the flag or the key', () => {
    expect(() => loadNodeConfig({ waitForCache: 'soon' }, dir, null)).toThrow(/^--wait-for-cache: cannot read "soon" as a duration/);
    expect(() => loadNodeConfig({ config: config('cache_wait: soon\n') }, dir, null)).toThrow(/cache_wait/);
  });
});
