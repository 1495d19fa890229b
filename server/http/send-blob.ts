/**
 * Answers GET/HEAD for one verified blob: the one place that knows HTTP
 * caching and ranges. Content is immutable and named by its digest, so the
 * ETag is the digest, caching is forever, and a 304 needs no disk read.
 *
 * Ranges: one range → 206; an unsatisfiable one → 416 with
 * `Content-Range: bytes *\/size`; a malformed header is ignored (RFC 9110
 * lets a server do that) and so is a multi-range request: we answer 200 with
 * the whole body rather than multipart/byteranges, which no client of ours
 * needs. `If-Range` that does not match the ETag also gets the whole body.
 *
 * Two callers: koa routes (`sendBlob`, which maps failures to HTTP errors)
 * and the lean path for `/blobs/sha256/…` that runs before koa
 * (fast-blobs.ts). Both decide the answer with `blobAnswer` and write it with
 * `writeBlobAnswer` straight to the Node response: small blobs from memory,
 * blobs the backend can `open` (files) through `pumpFile` (reused buffers,
 * backpressure by write completion), blobs in a bucket on plain http through
 * `pumpUrl` (a presigned GET read into reused buffers, the same way), other
 * backends through their `read` stream.
 *
 * Offloads: with `accel_redirect` a front-end nginx sends a file's body
 * (X-Accel-Redirect); with `redirect_blobs` (blobs in S3) a GET that has a
 * body to send is answered `307 Temporary Redirect` to a presigned URL of the
 * blob's object, and the client fetches the bytes from the object store
 * itself (re-sending its Range there). Either way the decision stays here:
 * the blob is looked up first (a missing one is still 404), and HEAD, 304,
 * 416 and empty bodies are airlock's own answers.
 */
import { close, read } from 'node:fs';
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import type { Context } from 'koa';
import parseRange from 'range-parser';
import { AirlockError } from '../../manifests/errors.js';
import type { OpenBlob, Store } from '../../storage/index.js';
import type { Metrics } from './metrics.js';
import { pumpFile } from './pump-file.js';
import { pumpUrl } from './pump-url.js';
import { SMALL_BLOB_MAX, type SmallBlobCache } from './small-blobs.js';
import { routeOf } from './track.js';

/** chunk size for backends that are not files (their stream, not our pool) */
export const STREAM_CHUNK = 256 * 1024;

export const IMMUTABLE = 'public, max-age=31536000, immutable';

export const OCTET_STREAM = 'application/octet-stream';

export interface BlobToSend {
  sha256: string;
  /** size the manifest promises, when known: a disagreeing blob is refused */
  size?: number;
  contentType?: string;
  /** overrides the immutable Cache-Control (a manifest asked for by tag can change) */
  cacheControl?: string;
  /** what the blob was asked for as, for error messages */
  what?: string;
  /** false: answered by airlock even with `redirect_blobs` (see SourceOptions) */
  redirect?: boolean;
}

export interface SendContext {
  store: Store;
  metrics: Metrics;
  smallBlobs?: SmallBlobCache;
  /**
   * `accel_redirect`: the internal location of a front-end nginx that maps the
   * backend's blob folder (e.g. `/_airlock_blobs/`); null or absent: airlock sends every body
   */
  accelRedirect?: string | null;
  /** `redirect_blobs`: GETs of blob bodies answer 307 to a presigned URL valid `ttlSeconds`; null or absent: airlock sends every body */
  redirectBlobs?: { ttlSeconds: number } | null;
}

/** What the caller knows of the blob before its source is chosen. */
export interface SourceOptions {
  /** false: never answer with a 307 (OCI manifests, whose Content-Type clients read; proxy mode, whose clients would come back through us) */
  redirect?: boolean;
  /** the type the presigned URL's answer should carry (the bucket holds every blob as application/octet-stream) */
  contentType?: string;
}

/** What the blob's bytes come from: memory, an open descriptor, a backend's stream, or the front end (X-Accel-Redirect). */
export type BlobSource = Buffer | OpenBlob | BackendBlob | OffloadedBlob | RedirectedBlob;

/** a blob the client fetches from the object store: the presigned URL it is sent to */
export interface RedirectedBlob {
  size: number;
  location: string;
}

/** a blob whose body the front end sends from its file: the URI to redirect it to */
export interface OffloadedBlob {
  size: number;
  accelRedirect: string;
}

/** the request header a front end sets to say it sends files named by X-Accel-Redirect (as Rack::Sendfile reads it) */
export const SENDFILE_TYPE = 'x-sendfile-type';

/** a blob of a backend without descriptors: its size, and its bytes as the backend streams them */
export interface BackendBlob {
  size: number;
  stream: (range?: { start: number; end: number }) => Promise<Readable>;
  /** a presigned GET of the blob (S3): over plain http, sent with reused buffers (pump-url.ts) instead of `stream` */
  signedUrl?: () => Promise<string>;
}

/** presigned GETs that serve makes for itself are valid this long, and reused for a third of it (signing costs more than the GET's head) */
const PUMP_URL_TTL = 900;
const PUMP_URL_REUSE_MS = (PUMP_URL_TTL / 3) * 1000;
const PUMP_URLS_MAX = 4096;

/** per backend (a reload brings a new one), per blob: the URL and until when it is reused */
const pumpUrls = new WeakMap<object, Map<string, { url: string; until: number }>>();

function signedUrlOf(backend: object, presign: (digest: string, ttlSeconds: number) => Promise<string>, sha256: string): Promise<string> {
  let urls = pumpUrls.get(backend);
  if (!urls) pumpUrls.set(backend, (urls = new Map()));
  const now = Date.now();
  const known = urls.get(sha256);
  if (known && known.until > now) return Promise.resolve(known.url);
  return presign(sha256, PUMP_URL_TTL).then((url) => {
    if (urls.size >= PUMP_URLS_MAX) urls.clear();
    urls.set(sha256, { url, until: now + PUMP_URL_REUSE_MS });
    return url;
  });
}

export interface BlobAnswer {
  status: 200 | 206 | 304 | 416;
  headers: OutgoingHttpHeaders;
  /** body bytes [start, end) of the blob; none for HEAD, 304 and 416 */
  start: number;
  end: number;
  body: boolean;
  /** the 416 explanation */
  text?: string;
}

export const etagOf = (sha256: string): string => `"sha256:${sha256}"`;

function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/** Decides status, headers and body range from the request's method and conditional/range headers. */
export function blobAnswer(
  method: string,
  req: IncomingHttpHeaders,
  blob: { sha256: string; size: number; contentType: string; cacheControl?: string },
): BlobAnswer {
  const { sha256, size } = blob;
  const etag = etagOf(sha256);
  const headers: OutgoingHttpHeaders = {
    ETag: etag,
    'Cache-Control': blob.cacheControl ?? IMMUTABLE,
    'Accept-Ranges': 'bytes',
    'Docker-Content-Digest': `sha256:${sha256}`,
  };
  if (noneMatch(req['if-none-match'], etag)) return { status: 304, headers, start: 0, end: 0, body: false };

  let start = 0;
  let end = size;
  let status: 200 | 206 = 200;
  const rangeHeader = req.range;
  const ifRange = req['if-range'];
  if (rangeHeader && (!ifRange || String(ifRange).trim() === etag)) {
    const parsed = parseRange(size, rangeHeader, { combine: true });
    if (parsed === -1) {
      headers['Content-Type'] = 'text/plain; charset=utf-8';
      headers['Content-Range'] = `bytes */${size}`;
      const text = `range ${rangeHeader.slice(0, 100)} is outside the ${size} bytes of sha256:${sha256}\n`;
      headers['Content-Length'] = Buffer.byteLength(text);
      return { status: 416, headers, start: 0, end: 0, body: false, text };
    }
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      start = parsed[0]!.start;
      end = parsed[0]!.end + 1;
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end - 1}/${size}`;
    }
  }
  headers['Content-Type'] = blob.contentType;
  headers['Content-Length'] = end - start;
  return { status, headers, start, end, body: method !== 'HEAD' && end > start };
}

/** Writes the answer and its body; owns `source` (closes a file whatever happens). Returns the body length promised. */
export function writeBlobAnswer(res: ServerResponse, a: BlobAnswer, source: BlobSource): number {
  const file = isOpenBlob(source) ? source : null;
  if (!a.body) {
    if (file) closeBlob(file);
    res.writeHead(a.status, a.headers);
    res.end(a.text);
    return a.text ? Buffer.byteLength(a.text) : 0;
  }
  if (isRedirected(source)) {
    // the bytes come from the object store: only the digest travels with the redirect, and the redirect
    // itself must not be cached past the URL's expiry
    const headers: OutgoingHttpHeaders = {
      Location: source.location,
      'Docker-Content-Digest': a.headers['Docker-Content-Digest'],
      'Cache-Control': 'no-store',
      'Content-Length': 0,
    };
    res.writeHead(307, headers);
    res.end();
    return 0;
  }
  if (isOffloaded(source)) {
    // the front end sends the body from the file (its range filter applies Range, against our ETag): no body here
    const headers: OutgoingHttpHeaders = { ...a.headers, 'X-Accel-Redirect': source.accelRedirect, 'Content-Length': 0 };
    delete headers['Content-Range'];
    res.writeHead(200, headers);
    res.end();
    return a.end - a.start;
  }
  res.writeHead(a.status, a.headers);
  if (Buffer.isBuffer(source)) res.end(a.start === 0 && a.end === source.length ? source : source.subarray(a.start, a.end));
  else if (file) pumpFile(file.fd, a.start, a.end, res);
  else {
    const other = source as BackendBlob;
    const ranged = a.start !== 0 || a.end !== other.size;
    const streamed = (): void => {
      other.stream(ranged ? { start: a.start, end: a.end - 1 } : undefined).then(
        (s) => pipeline(s, res, () => {}),
        (e: Error) => res.destroy(e),
      );
    };
    if (!other.signedUrl) streamed();
    else {
      other.signedUrl().then(
        (u) => {
          const url = new URL(u);
          if (url.protocol === 'http:') pumpUrl(url, a.start, a.end, ranged, res);
          else streamed();
        },
        (e: Error) => res.destroy(e),
      );
    }
  }
  return a.end - a.start;
}

const isOpenBlob = (s: BlobSource): s is OpenBlob => !Buffer.isBuffer(s) && 'fd' in s;

const isOffloaded = (s: BlobSource): s is OffloadedBlob => !Buffer.isBuffer(s) && 'accelRedirect' in s;

const isRedirected = (s: BlobSource): s is RedirectedBlob => !Buffer.isBuffer(s) && 'location' in s;

/** Does `writeBlobAnswer` answer this with a 307 (for the redirect counter)? */
export const redirects = (a: BlobAnswer, s: BlobSource): boolean => a.body && isRedirected(s);

const closeBlob = (b: OpenBlob): void => close(b.fd, () => {});

/** Reads a whole small file into one buffer (for the small-blob cache); closes it. */
export function readWhole(file: OpenBlob, sha256: string): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const body = Buffer.allocUnsafe(file.size);
    let at = 0;
    const step = (): void => {
      if (at === file.size) {
        closeBlob(file);
        return resolve(body);
      }
      read(file.fd, body, at, file.size - at, at, (err, n) => {
        if (err || n === 0) {
          closeBlob(file);
          return reject(err ?? new AirlockError('EINTEGRITY', `blob sha256:${sha256} changed size while read (${file.size} → ${at})`, { sha256 }));
        }
        at += n;
        step();
      });
    };
    step();
  });
}

/**
 * Where the blob's bytes come from: the small-blob cache, else the front end
 * when `accel_redirect` is set, the backend has local files and the request
 * came through a front end that sends them (`X-Sendfile-Type:
 * X-Accel-Redirect`; small blobs are still answered from memory), else the
 * backend's descriptor when it has them (small blobs are read whole and
 * cached on the way), else the backend's stream. With `redirect_blobs` a
 * GET is sent to a presigned URL of a backend that makes them (S3), once a
 * stat found the blob. null when the store does not hold it.
 */
export async function blobSource(
  sc: SendContext,
  sha256: string,
  method: string,
  headers?: IncomingHttpHeaders,
  opts: SourceOptions = {},
): Promise<BlobSource | null> {
  const cached = sc.smallBlobs?.get(sha256);
  if (cached) return cached;
  const backend = sc.store.backend;
  if (sc.redirectBlobs && backend.presign && method === 'GET' && opts.redirect !== false) {
    const st = await backend.stat(sha256);
    if (!st) return null;
    const contentType = opts.contentType && opts.contentType !== OCTET_STREAM ? opts.contentType : undefined;
    return { size: st.size, location: await backend.presign(sha256, sc.redirectBlobs.ttlSeconds, { contentType }) };
  }
  if (sc.accelRedirect && backend.localPath && headers?.[SENDFILE_TYPE] === 'X-Accel-Redirect') {
    const st = await backend.stat(sha256);
    if (!st) return null;
    if (!(sc.smallBlobs && method === 'GET' && st.size > 0 && st.size <= SMALL_BLOB_MAX)) {
      return { size: st.size, accelRedirect: sc.accelRedirect + backend.localPath(sha256).relative };
    }
  }
  if (backend.open) {
    const file = await backend.open(sha256);
    if (!file) return null;
    if (sc.smallBlobs && method === 'GET' && file.size > 0 && file.size <= SMALL_BLOB_MAX) {
      const body = await readWhole(file, sha256);
      sc.smallBlobs.set(sha256, body);
      return body;
    }
    return file;
  }
  const st = await backend.stat(sha256);
  if (!st) return null;
  const presign = backend.presign?.bind(backend);
  return {
    size: st.size,
    stream: (range) => backend.read(sha256, range, { highWaterMark: STREAM_CHUNK }),
    signedUrl: presign && (() => signedUrlOf(backend, presign, sha256)),
  };
}

/** ctx.state of a request that came in absolute form (this server as the client's proxy, routes/proxy.ts), also when it names one of our own paths */
export interface ProxiedState {
  proxied?: boolean;
}

export const sourceSize = (s: BlobSource): number => (Buffer.isBuffer(s) ? s.length : s.size);

/** The koa routes' way in: errors (not stored, wrong size) are thrown for renderError to answer. */
export async function sendBlob(ctx: Context, sc: SendContext, blob: BlobToSend): Promise<void> {
  const route = routeOf(ctx);
  // a client that has us as its proxy would ask us for the bucket's URL next: its blobs are never redirected
  const redirect = blob.redirect !== false && !(ctx.state as ProxiedState).proxied;
  const source = await blobSource(sc, blob.sha256, ctx.method, ctx.req.headers, { redirect, contentType: blob.contentType });
  if (!source) {
    sc.metrics.miss(route);
    throw new AirlockError('ENOTFOUND', `${blob.what ?? `blob sha256:${blob.sha256}`} is not in the cache`, { sha256: blob.sha256 });
  }
  const size = sourceSize(source);
  if (blob.size !== undefined && size !== blob.size) {
    if (isOpenBlob(source)) closeBlob(source);
    throw new AirlockError(
      'EINTEGRITY',
      `${blob.what ?? `blob sha256:${blob.sha256}`}: stored size ${size} differs from the manifest's ${blob.size}`,
      { sha256: blob.sha256, expected: blob.size, found: size },
    );
  }
  sc.metrics.hit(route);
  // koa's own spelling of the type (it adds "; charset=utf-8" where mime-types says so), kept for compatibility
  ctx.type = blob.contentType ?? OCTET_STREAM;
  const contentType = ctx.response.get('Content-Type') as string;
  ctx.remove('Content-Type');
  const answer = blobAnswer(ctx.method, ctx.req.headers, { sha256: blob.sha256, size, contentType, cacheControl: blob.cacheControl });
  // from here on the response is ours, not koa's: it would otherwise wrap the body in a stream of fresh buffers
  ctx.respond = false;
  if (redirects(answer, source)) sc.metrics.redirected(route);
  (ctx.state as { bodyBytes?: number }).bodyBytes = writeBlobAnswer(ctx.res, answer, source);
}
