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
 */
import type { Context } from 'koa';
import parseRange from 'range-parser';
import { AirlockError } from '../../manifests/errors.js';
import type { ByteRange, Store } from '../../storage/index.js';
import type { Metrics } from './metrics.js';
import { SMALL_BLOB_MAX, type SmallBlobCache } from './small-blobs.js';

export const STREAM_CHUNK = 256 * 1024;

export const IMMUTABLE = 'public, max-age=31536000, immutable';

export interface BlobToSend {
  sha256: string;
  /** size the manifest promises, when known: a disagreeing blob is refused */
  size?: number;
  contentType?: string;
  /** what the blob was asked for as, for error messages */
  what?: string;
}

export interface SendContext {
  store: Store;
  metrics: Metrics;
  smallBlobs?: SmallBlobCache;
}

async function readAll(store: Store, sha256: string, size: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of await store.read(sha256)) {
    parts.push(c as Buffer);
    n += (c as Buffer).length;
  }
  const body = Buffer.concat(parts, n);
  if (n !== size) throw new AirlockError('EINTEGRITY', `blob sha256:${sha256} changed size while read (${size} → ${n})`, { sha256 });
  return body;
}

export const etagOf = (sha256: string): string => `"sha256:${sha256}"`;

function noneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

export async function sendBlob(ctx: Context, sc: SendContext, blob: BlobToSend): Promise<void> {
  const { store, metrics, smallBlobs } = sc;
  let cached = smallBlobs?.get(blob.sha256);
  const stat = cached ? { size: cached.length } : await store.stat(blob.sha256);
  if (!stat) {
    metrics.miss(ctx);
    throw new AirlockError('ENOTFOUND', `${blob.what ?? `blob sha256:${blob.sha256}`} is not in the cache`, {
      sha256: blob.sha256,
    });
  }
  if (blob.size !== undefined && stat.size !== blob.size) {
    throw new AirlockError(
      'EINTEGRITY',
      `${blob.what ?? `blob sha256:${blob.sha256}`}: stored size ${stat.size} differs from the manifest's ${blob.size}`,
      { sha256: blob.sha256, expected: blob.size, found: stat.size },
    );
  }
  metrics.hit(ctx);
  const size = stat.size;
  const etag = etagOf(blob.sha256);
  ctx.set('ETag', etag);
  ctx.set('Cache-Control', IMMUTABLE);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Docker-Content-Digest', `sha256:${blob.sha256}`);
  ctx.type = blob.contentType ?? 'application/octet-stream';

  if (noneMatch(ctx.get('If-None-Match'), etag)) {
    ctx.status = 304;
    return;
  }

  let range: ByteRange | undefined;
  const rangeHeader = ctx.get('Range');
  const ifRange = ctx.get('If-Range');
  if (rangeHeader && (!ifRange || ifRange.trim() === etag)) {
    const parsed = parseRange(size, rangeHeader, { combine: true });
    if (parsed === -1) {
      ctx.status = 416;
      ctx.set('Content-Range', `bytes */${size}`);
      ctx.body = `range ${rangeHeader.slice(0, 100)} is outside the ${size} bytes of sha256:${blob.sha256}\n`;
      return;
    }
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      range = { start: parsed[0]!.start, end: parsed[0]!.end };
    }
  }

  const length = range ? range.end - range.start + 1 : size;
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  } else {
    ctx.status = 200;
  }
  if (ctx.method === 'HEAD') {
    ctx.length = length; // koa ends a HEAD response without a body
    return;
  }
  if (length === 0) {
    ctx.body = Buffer.alloc(0);
    return;
  }
  if (!cached && smallBlobs && size <= SMALL_BLOB_MAX) {
    cached = await readAll(store, blob.sha256, size);
    smallBlobs.set(blob.sha256, cached);
  }
  if (cached) {
    ctx.body = range ? cached.subarray(range.start, range.end + 1) : cached;
    return;
  }
  // smaller chunks than ingest's: with hundreds of concurrent downloads, each stream's buffers add up
  const stream = await store.backend.read(blob.sha256, range, { highWaterMark: STREAM_CHUNK });
  ctx.body = stream;
  ctx.length = length;
}
