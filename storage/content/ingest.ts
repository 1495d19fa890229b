/**
 * Resumable, verified ingest of one blob. Bytes go to `partial/<hex>` (which
 * survives a crash and is never served), are hashed as they arrive, are cut
 * at size + 1, and become a blob only when digest and size matched (through
 * the backend: a rename for the filesystem).
 *
 * On a restart the partial is re-hashed and the fetcher is asked for the rest
 * (`offset` = partial length); an upstream that ignores Range (answers from
 * 0) makes us truncate and start clean. URLs are tried in order, and a run
 * always ends:
 * - network failures (resets, 5xx, stalls: EUPSTREAM) are retried with
 *   exponential backoff, `retries` attempts without progress and at most
 *   `maxAttempts` requests per URL, progress or not (a URL that sends a few
 *   bytes per attempt cannot keep us forever);
 * - fewer than `minRate` bytes/s over `rateWindowMs` is "too slow": the next
 *   URL at once (the last URL is retried, within the same bounds);
 * - wrong bytes (EINTEGRITY), a 4xx and anything marked `retryable: false`
 *   (protocol errors, refused redirects) move on to the next URL at once.
 * The next URL resumes from the partial. Each byte range remembers which URL
 * wrote it; a digest failure on bytes that are not all the current URL's (or
 * that an earlier run left) discards them and asks the current URL once more
 * from 0, so a URL is only ever blamed for bytes it sent itself. Local
 * failures (disk full…) stop everything.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rm, stat, type FileHandle } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AirlockError, isAirlockError, toAirlockError } from '../../manifests/errors.js';
import type { BlobRef } from '../../manifests/types.js';
import type { BlobBackend, Fetcher, IngestProgress, IngestResult, UrlFailure } from '../types.js';
import { assertDigest, partialDir, partialPath } from '../paths.js';

export interface IngestTuning {
  signal?: AbortSignal;
  onProgress?: (p: IngestProgress) => void;
  /** attempts per URL on resets, 5xx, stalls (default 5); an attempt that made progress does not count */
  retries?: number;
  onRetry?: (info: { url: string; attempt: number; error: AirlockError }) => void;
  /** first backoff delay; doubles per attempt, capped at 30 s (default 500 ms) */
  backoffMs?: number;
  /** no byte for this long = a stall, retried like a reset (default 60 s) */
  stallMs?: number;
  /**
   * fewer bytes/s than this over `rateWindowMs` = too slow: the next URL is
   * tried (default 1 KiB/s over 60 s; 0 switches the check off)
   */
  minRate?: number;
  rateWindowMs?: number;
  /** requests per URL per run, progress or not (default 10) */
  maxAttempts?: number;
}

export const DEFAULT_MIN_RATE = 1024;
export const DEFAULT_RATE_WINDOW_MS = 60_000;

export interface IngestContext {
  /** cache_dir: partial/ lives here even when blobs live elsewhere */
  root: string;
  backend: BlobBackend & { adopt?: (expected: BlobRef, file: string) => Promise<void> };
  /** digests being ingested in this process: a second caller joins the first */
  inflight: Map<string, Promise<IngestResult>>;
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

type Verdict = 'retry' | 'next-url' | 'fatal';

/** What to do after a failure that came from the upstream side. */
export function classify(e: unknown): Verdict {
  if (isAirlockError(e)) {
    if (e.code === 'EINTEGRITY' || e.code === 'ENOTFOUND') return 'next-url';
    // a certificate that does not verify here (EUSAGE): another mirror may still serve the bytes
    if (e.details.cause === 'tls') return 'next-url';
    if (e.code !== 'EUPSTREAM') return 'fatal';
    if (e.details.retryable === false) return 'next-url';
    if (e.details.retryable === true) return 'retry';
    const status = e.details.status;
    if (typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429) return 'next-url';
    return 'retry';
  }
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && NETWORK_CODES.has(code)) return 'retry';
  // got's errors (RequestError, TimeoutError, ReadError…) are network failures
  if (e instanceof Error && /Error$/.test(e.name) && 'timings' in e) return 'retry';
  return 'fatal';
}

export async function ingestFromUrls(
  ctx: IngestContext,
  expected: BlobRef,
  urls: string[],
  fetcher: Fetcher,
  opts: IngestTuning = {},
): Promise<IngestResult> {
  checkRef(expected);
  const running = ctx.inflight.get(expected.sha256);
  if (running) return running;
  const job = (async () => {
    if (await ctx.backend.stat(expected.sha256)) {
      return { digest: expected.sha256, size: expected.size, fetched: false, transferred: 0, resumedFrom: 0 };
    }
    if (urls.length === 0) {
      throw new AirlockError('EUPSTREAM', `blob sha256:${expected.sha256}: no URL to fetch it from`, { sha256: expected.sha256 });
    }
    return download(ctx, expected, urls, fetcher, opts);
  })();
  ctx.inflight.set(expected.sha256, job);
  try {
    return await job;
  } finally {
    ctx.inflight.delete(expected.sha256);
  }
}

function checkRef(expected: BlobRef): void {
  assertDigest(expected.sha256, 'ingest');
  if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
    throw new AirlockError('EUSAGE', `ingest sha256:${expected.sha256}: size ${expected.size} is not a byte count`, { ...expected });
  }
}

/** Which source wrote a byte range of the partial file (null: an earlier run, source unknown). */
interface Span {
  url: string | null;
  start: number;
  end: number;
}

/** The partial file, the hash of what it holds, and who wrote which bytes. */
interface Partial {
  file: string;
  handle: FileHandle;
  hash: Hash;
  length: number;
  spans: Span[];
}

async function openPartial(root: string, expected: BlobRef): Promise<Partial> {
  await mkdir(partialDir(root), { recursive: true });
  const file = partialPath(root, expected.sha256);
  const handle = await open(file, 'a+');
  const hash = createHash('sha256');
  let length = (await handle.stat()).size;
  if (length > expected.size) {
    await handle.truncate(0);
    length = 0;
  }
  if (length > 0) {
    // re-hash what a previous run left, so the final digest covers every byte
    await pipeline(createReadStream(file, { start: 0, end: length - 1, highWaterMark: 1024 * 1024 }), async (src: AsyncIterable<Buffer>) => {
      for await (const chunk of src) hash.update(chunk);
    });
  }
  return { file, handle, hash, length, spans: length > 0 ? [{ url: null, start: 0, end: length }] : [] };
}

async function download(
  ctx: IngestContext,
  expected: BlobRef,
  urls: string[],
  fetcher: Fetcher,
  opts: IngestTuning,
): Promise<IngestResult> {
  const { signal } = opts;
  const strikesAllowed = Math.max(1, opts.retries ?? 5);
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 10);
  const backoff = opts.backoffMs ?? 500;
  const guard: GuardLimits = {
    stallMs: opts.stallMs ?? 60_000,
    minRate: opts.minRate ?? DEFAULT_MIN_RATE,
    rateWindowMs: opts.rateWindowMs ?? DEFAULT_RATE_WINDOW_MS,
  };
  const tag = `blob sha256:${expected.sha256}`;
  let part: Partial | null = await openPartial(ctx.root, expected);
  let resumedFrom = part.length;
  let transferred = 0;
  const failed: UrlFailure[] = [];
  let lastError: AirlockError | null = null;
  // progress counts bytes on disk, so what it showed last is what a re-run resumes from
  const progress = (bytes: number): void => opts.onProgress?.({ digest: expected.sha256, bytes, size: expected.size });
  const discard = async (p: Partial): Promise<void> => {
    await p.handle.close().catch(() => {});
    await rm(p.file, { force: true });
    part = null;
    resumedFrom = 0;
    progress(0);
  };

  try {
    for (const [index, url] of urls.entries()) {
      const lastUrl = index === urls.length - 1;
      let attempts = 0;
      // failed attempts that brought no good progress: `retries` of them and this URL is given up
      let strikes = 0;
      // a digest failure on a partial that other sources (or an earlier run) wrote is retried once from 0 here
      let restartedFromZero = false;
      for (;;) {
        attempts++;
        abortCheck(signal, tag);
        part ??= await openPartial(ctx.root, expected);
        const p: Partial = part;
        const before = p.length;
        let localError: unknown = null;
        let batch: WriteBatch | null = null;
        try {
          const res = await fetcher.fetch(url, { offset: p.length, maxLength: expected.size + 1 - p.length, signal });
          if (res.offset !== p.length) {
            if (res.offset !== 0) {
              res.stream.destroy();
              throw new AirlockError('EUPSTREAM', `${url}: protocol error: asked for bytes from ${p.length}, got them from ${res.offset}`, {
                url,
                cause: 'protocol error',
                retryable: false,
              });
            }
            // the upstream ignored Range: start clean from 0
            await p.handle.truncate(0);
            p.hash = createHash('sha256');
            p.length = 0;
            p.spans = [];
            resumedFrom = 0;
          }
          const base = p.length;
          batch = new WriteBatch(p.handle, (written) => progress(base + written));
          for await (const chunks of guarded(res.stream, guard, url, signal)) {
            for (const buf of chunks) {
              if (p.length + buf.length > expected.size) {
                res.stream.destroy();
                throw new AirlockError('EINTEGRITY', `${tag} from ${url}: more than the expected ${expected.size} bytes`, {
                  url,
                  expected: { ...expected },
                  found: { size: p.length + buf.length, sha256: null },
                });
              }
              p.hash.update(buf);
              addSpan(p.spans, url, p.length, buf.length);
              p.length += buf.length;
              transferred += buf.length;
              await batch.add(buf);
            }
          }
          await batch.flush();
          if (p.length < expected.size) {
            throw new AirlockError('EUPSTREAM', `${url}: body ended after ${p.length} of ${expected.size} bytes`, { url, bytes: p.length });
          }
          const found = p.hash.copy().digest('hex');
          if (found !== expected.sha256) {
            const others = p.spans.filter((sp) => sp.url !== url);
            const error = new AirlockError('EINTEGRITY', `${tag} from ${url}: got sha256:${found} (${p.length} bytes), expected sha256:${expected.sha256}`, {
              url,
              expected: { ...expected },
              found: { sha256: found, size: p.length },
              ...(others.length > 0 ? { mixed: p.spans.map((sp) => ({ url: sp.url ?? 'an earlier run', start: sp.start, end: sp.end })) } : {}),
            });
            if (others.length > 0 && !restartedFromZero) {
              // Not all these bytes are this URL's: blame nobody yet, ask this URL for the whole body.
              restartedFromZero = true;
              await discard(p);
              const from = [...new Set(others.map((sp) => sp.url ?? 'an earlier run'))].join(', ');
              opts.onRetry?.({
                url,
                attempt: attempts,
                error: new AirlockError('EINTEGRITY', `${tag}: the partial download mixed bytes from ${from} and ${url} and failed the digest; discarded, asking ${url} again from byte 0`, error.details),
              });
              continue;
            }
            throw error;
          }
          await p.handle.sync();
          await p.handle.close();
          part = null;
          await commitPartial(ctx, expected, p.file);
          return { digest: expected.sha256, size: expected.size, fetched: true, transferred, resumedFrom, url, failed };
        } catch (e) {
          // what was hashed must be on disk before a retry resumes from p.length
          if (batch) localError = await batch.flush().then(() => null, (we: unknown) => we);
          if (signal?.aborted) throw aborted(tag, signal);
          if (localError !== null) throw toAirlockError(localError);
          let verdict = classify(e);
          if (verdict === 'fatal') throw toAirlockError(e);
          const error = isAirlockError(e) ? e : new AirlockError('EUPSTREAM', `${url}: ${(e as Error).message}`, { url }, { cause: e });
          // wrong bytes are never kept, not even for resume: this URL sent some of them
          if (error.code === 'EINTEGRITY') await discard(p);
          const slow = error.details.cause === 'too slow';
          // too slow: another URL may be quicker; only the last one is tried again (bounded by strikes)
          if (slow && !lastUrl) verdict = 'next-url';
          if (slow || !(p.length > before)) strikes++;
          if (verdict === 'next-url' || strikes >= strikesAllowed || attempts >= maxAttempts) {
            failed.push({ url, code: error.code, reason: error.message, attempts });
            lastError = error;
            break;
          }
          opts.onRetry?.({ url, attempt: attempts, error });
          await sleep(Math.min(backoff * 2 ** (strikes - 1), 30_000), signal, tag);
        }
      }
    }
  } finally {
    await (part as Partial | null)?.handle.close().catch(() => {});
  }
  const summary = failed.map((f) => `${f.url}: ${stripUrl(f.reason, f.url)}`).join('; ');
  throw new AirlockError(lastError!.code, `${tag}: every URL failed (${summary})`, {
    ...lastError!.details,
    sha256: expected.sha256,
    urls: failed,
  });
}

/** "URL: why" → "why", so a list of URL: reason pairs does not name each URL twice. */
function stripUrl(message: string, url: string): string {
  return message.startsWith(`${url}: `) ? message.slice(url.length + 2) : message;
}

/** Records that `url` wrote `n` bytes at `start` (runs from one URL merge). */
function addSpan(spans: Span[], url: string, start: number, n: number): void {
  const last = spans[spans.length - 1];
  if (last && last.url === url && last.end === start) last.end += n;
  else spans.push({ url, start, end: start + n });
}

async function commitPartial(ctx: IngestContext, expected: BlobRef, file: string): Promise<void> {
  if (ctx.backend.adopt) {
    await ctx.backend.adopt(expected, file);
    return;
  }
  const w = await ctx.backend.writer(expected);
  try {
    await pipeline(createReadStream(file, { highWaterMark: 1024 * 1024 }), w.stream);
  } catch (e) {
    await w.cancel();
    throw e;
  }
  await w.commit();
  await rm(file, { force: true });
}

/** One-shot verified ingest of a stream (bundles, tests): no partial, no resume. */
export async function ingestStream(
  ctx: IngestContext,
  expected: BlobRef,
  stream: Readable,
  opts: IngestTuning = {},
): Promise<IngestResult> {
  checkRef(expected);
  if (await ctx.backend.stat(expected.sha256)) {
    stream.destroy();
    return { digest: expected.sha256, size: expected.size, fetched: false, transferred: 0, resumedFrom: 0 };
  }
  const w = await ctx.backend.writer(expected);
  let bytes = 0;
  const steps: Array<NodeJS.ReadableStream | NodeJS.WritableStream | NodeJS.ReadWriteStream> = [stream];
  if (opts.onProgress) {
    const onProgress = opts.onProgress;
    steps.push(
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          onProgress({ digest: expected.sha256, bytes, size: expected.size });
          cb(null, chunk);
        },
      }),
    );
  }
  steps.push(w.stream);
  try {
    await pipeline(steps, { signal: opts.signal });
  } catch (e) {
    await w.cancel();
    throw toAirlockError(e);
  }
  await w.commit();
  return { digest: expected.sha256, size: expected.size, fetched: true, transferred: expected.size, resumedFrom: 0 };
}

/**
 * Verified ingest fed chunk by chunk: `feed` calls `put` for each chunk in
 * order, and may reuse a chunk's buffer once its put resolved (bundles: a
 * few read buffers in turn, nothing allocated per chunk). Hash and size are
 * checked at commit, as for ingestStream; on any failure nothing is kept.
 */
export async function ingestFeed(
  ctx: IngestContext,
  expected: BlobRef,
  feed: (put: (chunk: Buffer) => Promise<void>) => Promise<void>,
  opts: Pick<IngestTuning, 'onProgress'> = {},
): Promise<IngestResult> {
  checkRef(expected);
  if (await ctx.backend.stat(expected.sha256)) {
    await feed(async () => {}); // read past it
    return { digest: expected.sha256, size: expected.size, fetched: false, transferred: 0, resumedFrom: 0 };
  }
  const w = await ctx.backend.writer(expected);
  let bytes = 0;
  const progress = (n: number): void => {
    bytes += n;
    opts.onProgress?.({ digest: expected.sha256, bytes, size: expected.size });
  };
  // a backend without put gets copies through its stream, with its backpressure
  const put = w.put
    ? (chunk: Buffer): Promise<void> => w.put!(chunk).then(() => progress(chunk.length))
    : (chunk: Buffer): Promise<void> =>
        new Promise<void>((resolve, reject) => {
          const ok = w.stream.write(Buffer.from(chunk), (e) => (e ? reject(e) : undefined));
          progress(chunk.length);
          if (ok) resolve();
          else w.stream.once('drain', resolve);
        });
  try {
    await feed(put);
  } catch (e) {
    await w.cancel();
    throw toAirlockError(e);
  }
  await w.commit();
  return { digest: expected.sha256, size: expected.size, fetched: true, transferred: expected.size, resumedFrom: 0 };
}

/** Bytes gathered before one write: socket chunks are 16–64 KiB, and a write per chunk is a libuv pool round trip. */
const BATCH_BYTES = 256 * 1024;

/**
 * Appends to a partial file in ~1 MiB writes, one in flight while the next
 * batch is gathered (the handle is O_APPEND, so one at a time keeps order).
 * A failed write surfaces at the next add() or at flush() as a local error.
 */
class WriteBatch {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private written = 0;
  private inflight: Promise<void> = Promise.resolve();

  constructor(
    private readonly handle: FileHandle,
    private readonly onWritten: (written: number) => void,
  ) {}

  async add(chunk: Buffer): Promise<void> {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes < BATCH_BYTES) return;
    await this.inflight;
    this.inflight = this.write();
  }

  async flush(): Promise<void> {
    await this.inflight;
    this.inflight = this.write();
    await this.inflight;
  }

  private async write(): Promise<void> {
    const chunks = this.chunks;
    const total = this.bytes;
    this.chunks = [];
    this.bytes = 0;
    // writev: one system call for the batch, no copy into a bigger buffer
    for (let i = 0; i < chunks.length; ) {
      let { bytesWritten } = await this.handle.writev(i === 0 ? chunks : chunks.slice(i));
      while (i < chunks.length && bytesWritten >= chunks[i]!.length) bytesWritten -= chunks[i++]!.length;
      if (bytesWritten > 0) chunks[i] = chunks[i]!.subarray(bytesWritten); // a short write ended inside this chunk
    }
    this.written += total;
    if (total > 0) this.onWritten(this.written);
  }
}

interface GuardLimits {
  stallMs: number;
  minRate: number;
  rateWindowMs: number;
}

/**
 * Yields the stream's chunks. No byte for `stallMs` destroys it with a
 * retryable stall; fewer than `minRate` bytes/s over the last `rateWindowMs`
 * (checked once a whole window has passed) with a "too slow" error, so an
 * upstream that trickles a byte now and then cannot hold a run forever.
 */
async function* guarded(stream: Readable, g: GuardLimits, url: string, signal?: AbortSignal): AsyncGenerator<Buffer[]> {
  let stallTimer: NodeJS.Timeout | null = null;
  let rateTimer: NodeJS.Timeout | null = null;
  const arm = (): void => {
    if (stallTimer) clearTimeout(stallTimer);
    stallTimer = setTimeout(() => stream.destroy(new AirlockError('EUPSTREAM', `${url}: stalled (no data for ${g.stallMs} ms)`, { url, cause: 'stall' })), g.stallMs);
  };
  const onAbort = (): void => {
    stream.destroy(new AirlockError('EUPSTREAM', `${url}: aborted`, { url }));
  };
  let received = 0;
  if (g.minRate > 0 && g.rateWindowMs > 0) {
    const started = Date.now();
    // [time, bytes so far]; the oldest kept is the newest one at least a window old
    const samples: Array<[number, number]> = [[started, 0]];
    rateTimer = setInterval(
      () => {
        const now = Date.now();
        samples.push([now, received]);
        while (samples.length > 2 && samples[1]![0] <= now - g.rateWindowMs) samples.shift();
        const [t0, b0] = samples[0]!;
        if (now - t0 < g.rateWindowMs) return;
        const rate = ((received - b0) * 1000) / (now - t0);
        if (rate < g.minRate) {
          stream.destroy(
            new AirlockError(
              'EUPSTREAM',
              `${url}: too slow: ${received - b0} bytes in the last ${((now - t0) / 1000).toFixed(1)} s (minimum ${g.minRate} bytes/s over ${g.rateWindowMs / 1000} s)`,
              { url, cause: 'too slow', rate: Math.round(rate), minRate: g.minRate },
            ),
          );
        }
      },
      Math.max(20, Math.min(1000, g.rateWindowMs / 10)),
    );
  }
  signal?.addEventListener('abort', onAbort, { once: true });
  arm();
  try {
    for await (const chunks of chunksOf(stream)) {
      for (const chunk of chunks) received += chunk.length;
      arm();
      yield chunks;
    }
  } finally {
    if (stallTimer) clearTimeout(stallTimer);
    if (rateTimer) clearInterval(rateTimer);
    signal?.removeEventListener('abort', onAbort);
    stream.destroy();
  }
}

/** bytes queued before the stream is paused (the fetch stream's own highWaterMark) */
const QUEUED_BYTES = 256 * 1024;

/**
 * The stream's chunks as the socket delivered them, those that arrived
 * together in one array. `for await` over a Readable reads everything it
 * holds at once: behind a disk write, that was a Buffer.concat of up to its
 * highWaterMark (256 KiB) for half the chunks, a second allocation of most
 * downloaded bytes, freed only at some later GC. An array keeps what the
 * concatenation gave (one step per burst, not per chunk) without the copy.
 */
async function* chunksOf(stream: Readable): AsyncGenerator<Buffer[]> {
  let queue: Buffer[] = [];
  let queued = 0;
  let ended = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = (): void => {
    wake?.();
    wake = null;
  };
  const onData = (chunk: Buffer): void => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= QUEUED_BYTES) stream.pause();
    notify();
  };
  const onEnd = (): void => {
    ended = true;
    notify();
  };
  const onError = (e: unknown): void => {
    failure ??= e;
    notify();
  };
  const onClose = (): void => {
    if (!ended) failure ??= Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
    notify();
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
  stream.on('close', onClose);
  try {
    for (;;) {
      if (queue.length > 0) {
        const chunks = queue;
        queue = [];
        queued = 0;
        if (stream.isPaused()) stream.resume();
        yield chunks;
        continue;
      }
      if (failure) throw failure;
      if (ended) return;
      if (stream.isPaused()) stream.resume();
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } finally {
    stream.off('data', onData);
    stream.off('end', onEnd);
    stream.off('error', onError);
    stream.off('close', onClose);
  }
}

function aborted(tag: string, signal: AbortSignal): AirlockError {
  return new AirlockError('EUPSTREAM', `${tag}: stopped (aborted); the partial download is kept for the next run`, {
    aborted: true,
    reason: String(signal.reason),
  });
}

function abortCheck(signal: AbortSignal | undefined, tag: string): void {
  if (signal?.aborted) throw aborted(tag, signal);
}

function sleep(ms: number, signal: AbortSignal | undefined, tag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(aborted(tag, signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(aborted(tag, signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The length of a partial download, for status displays (0 when none). */
export async function partialLength(root: string, digest: string): Promise<number> {
  try {
    return (await stat(partialPath(root, digest))).size;
  } catch {
    return 0;
  }
}
