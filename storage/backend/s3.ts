/**
 * The S3 BlobBackend (Ceph RGW, MinIO, AWS): blobs are objects under
 * `PREFIX/blobs/sha256/ab/<hex>`, quarantined ones under
 * `PREFIX/quarantine/<hex>.<timestamp>`; release records are kept beside
 * them through `shelf()` (s3-shelf.ts). Partials and the lock stay local
 * under cache_dir.
 *
 * Nothing unverified ever sits under a blob's key. A writer hashes the bytes
 * as they come and lets them reach the bucket only through a gate:
 * - a small blob (≤ PART_SIZE) is held in memory and sent with one PUT after
 *   sha256 and size matched (with Content-MD5, so the server refuses bytes
 *   damaged on the way);
 * - a big one streams into a multipart upload (lib-storage `Upload`, parts in
 *   parallel) whose body ends only once the digest matched: the last part,
 *   and so CompleteMultipartUpload, is never sent for wrong bytes; on any
 *   failure the upload is aborted. An object appears only at Complete, whole.
 * A blob already in the bucket is not sent again (content is content).
 *
 * Ingest's verified partial file is handed over whole (`adopt`): one pass
 * hashes it again (sha256, and the MD5 of each part), then the parts are
 * uploaded from the file itself, in parallel, each with its Content-MD5, so
 * RGW stores only the bytes that were verified and no part sits in memory.
 *
 * The SDK is built with request checksums and response validation
 * WHEN_REQUIRED: by default it sends stream bodies aws-chunked with CRC32
 * trailers, which RGW answers with 411 MissingContentLength.
 */
import { createHash } from 'node:crypto';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { PassThrough, Writable, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { AirlockError, isAirlockError } from '../../manifests/errors.js';
import type { BlobRef } from '../../manifests/types.js';
import type { BlobBackend, BlobStat, BlobWriter, ByteRange } from '../types.js';
import { assertDigest, isDigest } from '../paths.js';
import { tooLong } from './fs.js';
import { s3Shelf } from './s3-shelf.js';

/** Part size of multipart uploads; blobs up to this size go in one PUT from memory. */
export const PART_SIZE = 8 * 1024 * 1024;
/** parts of one blob in flight at once */
const QUEUE_SIZE = 4;
/** S3 allows 10,000 parts: bigger blobs get bigger parts */
const MAX_PARTS = 10_000;

export interface S3Options {
  /** e.g. http://127.0.0.1:7480 (RGW); absent: AWS for `region` */
  endpoint?: string;
  bucket: string;
  /** key prefix, e.g. "airlock" → airlock/blobs/sha256/…; "" for none */
  prefix?: string;
  region?: string;
  /** path-style URLs (endpoint/bucket/key), which RGW needs; default: true when an endpoint is given */
  forcePathStyle?: boolean;
  /** tests only: otherwise the SDK's default chain (AWS_ACCESS_KEY_ID…, ~/.aws/credentials, AWS_PROFILE…) */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export interface S3BlobBackend extends BlobBackend {
  readonly bucket: string;
  /**
   * Uploads a local file (ingest's verified partial) as the blob and removes
   * it: one pass hashes it (sha256 of the whole, MD5 of each part), then the
   * parts go up from the file itself, in parallel, each with its Content-MD5,
   * so the server takes only the bytes that were verified; memory stays flat.
   */
  adopt(expected: BlobRef, file: string): Promise<void>;
  /** the object key of a blob */
  key(digest: string): string;
  /** every digest in the bucket (one paginated listing) */
  listAll(): Promise<string[]>;
  /** copies a blob to quarantine/ and removes it from blobs/; returns where it went */
  quarantine(digest: string): Promise<string>;
  /** `airlock gc`: what quarantine/ holds in the bucket, removed unless `dryRun` */
  purgeQuarantine(dryRun: boolean): Promise<{ count: number; bytes: number }>;
  /** the SDK client (tests, benches) */
  readonly client: S3Client;
  close(): void;
}

/** bigger blobs get bigger parts (S3 allows 10,000), in whole MiB */
const partSizeFor = (size: number): number => Math.max(PART_SIZE, Math.ceil(size / MAX_PARTS / (1024 * 1024)) * 1024 * 1024);

/** attempts per part or PUT from a file: the SDK does not retry a request whose body is a stream */
const FILE_ATTEMPTS = 3;

/** The SDK's own warnings (e.g. "non-retryable streaming request", which we retry ourselves) are not for the operator. */
const quietLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** "", "a", "/a/b/" → "", "a/", "a/b/" */
function normalPrefix(prefix: string | undefined): string {
  const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  return p ? `${p}/` : '';
}

export function s3Backend(opts: S3Options): S3BlobBackend {
  const bucket = opts.bucket;
  const prefix = normalPrefix(opts.prefix);
  const blobsPrefix = `${prefix}blobs/sha256/`;
  const where = `s3 ${opts.endpoint ?? `(AWS ${opts.region ?? 'us-east-1'})`} bucket ${bucket}`;
  const secure = (opts.endpoint ?? 'https:').startsWith('https:');
  const config: S3ClientConfig = {
    region: opts.region ?? 'us-east-1',
    forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    logger: quietLogger,
    // over https serving holds a socket per response being streamed: more than the SDK's 50; over http serve
    // reads bodies on sockets of its own (server/http/pump-url.ts) and this agent carries short requests (HEAD),
    // whose bursts (200 downloads starting at once) need not open a socket each
    requestHandler: {
      connectionTimeout: 10_000,
      ...(secure
        ? { httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 256 }) }
        : { httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 32, maxFreeSockets: 32 }) }),
    },
  };
  if (opts.endpoint) config.endpoint = opts.endpoint;
  if (opts.credentials) config.credentials = opts.credentials;
  // the version is pinned on purpose (the last ones for Node 20): its "needs Node 22 from 2027" warning would print at every command
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const client = new S3Client(config);

  const key = (digest: string): string => `${blobsPrefix}${digest.slice(0, 2)}/${digest}`;

  /** An SDK failure as one AirlockError line: what we did, where, and why. */
  const fail = (e: unknown, what: string, details: Record<string, unknown> = {}): AirlockError => {
    if (isAirlockError(e)) return e;
    const err = e as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
    const status = err.$metadata?.httpStatusCode;
    const why = `${err.name && err.name !== 'Error' ? `${err.name}: ` : ''}${err.message ?? String(e)}`;
    const base = { ...details, bucket, endpoint: opts.endpoint ?? null, status: status ?? null };
    if (err.name === 'CredentialsProviderError' || /credential/i.test(err.message ?? '')) {
      return new AirlockError(
        'EUSAGE',
        `${where}: no S3 credentials (${why}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with ~/.aws/credentials`,
        base,
        { cause: e },
      );
    }
    if (err.name === 'NoSuchBucket' || (what === 'check the bucket' && status === 404)) {
      return new AirlockError('EUSAGE', `${where}: the bucket does not exist (create it first, e.g. s3cmd mb s3://${bucket})`, base, { cause: e });
    }
    if (status === 403 || err.name === 'AccessDenied' || err.name === 'InvalidAccessKeyId' || err.name === 'SignatureDoesNotMatch') {
      return new AirlockError('EUSAGE', `${where}: ${what}: access denied (${why}); check the credentials and the bucket's policy`, base, {
        cause: e,
      });
    }
    // unreachable, 5xx, a reset: the object store is the upstream of this step, and a re-run resumes
    return new AirlockError('EUPSTREAM', `${where}: ${what}: ${why}`, base, { cause: e });
  };

  // one HeadBucket per process, before the first answer that could mistake a missing bucket for a missing blob
  let checked: Promise<void> | null = null;
  const ready = (): Promise<void> => {
    checked ??= client.send(new HeadBucketCommand({ Bucket: bucket })).then(
      () => undefined,
      (e: unknown) => {
        checked = null; // a later call tries again (RGW still starting, a network blip)
        throw fail(e, 'check the bucket');
      },
    );
    return checked;
  };

  const isMissing = (e: unknown): boolean => {
    const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
    return err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404;
  };

  const remove = async (digest: string): Promise<void> => {
    assertDigest(digest, 'blob delete');
    await ready();
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key(digest) }));
    } catch (e) {
      if (isMissing(e)) return;
      throw fail(e, `delete sha256:${digest}`, { sha256: digest });
    }
  };

  const stat = async (digest: string): Promise<BlobStat | null> => {
    assertDigest(digest, 'blob stat');
    await ready();
    try {
      const h = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key(digest) }));
      return { size: h.ContentLength ?? 0, mtimeMs: h.LastModified?.getTime() ?? 0 };
    } catch (e) {
      if (isMissing(e)) return null;
      throw fail(e, `stat sha256:${digest}`, { sha256: digest });
    }
  };

  const notFound = (digest: string): AirlockError =>
    new AirlockError('ENOTFOUND', `blob sha256:${digest} is not in the store`, { sha256: digest });

  const outside = (digest: string, range: ByteRange, size: number | null): AirlockError =>
    new AirlockError('EUSAGE', `range ${range.start}-${range.end} is outside blob sha256:${digest}${size === null ? '' : ` of ${size} bytes`}`, {
      sha256: digest,
      size,
      range,
    });

  async function* listKeys(): AsyncGenerator<string> {
    for await (const blob of listSized()) yield blob.digest;
  }

  /** every blob with its size: ListObjectsV2 names each object's size, so one paginated listing and no HEAD per blob */
  async function* listSized(): AsyncGenerator<{ digest: string; size: number }> {
    await ready();
    let token: string | undefined;
    do {
      let page;
      try {
        page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: blobsPrefix, ContinuationToken: token, MaxKeys: 1000 }));
      } catch (e) {
        throw fail(e, 'list blobs');
      }
      for (const o of page.Contents ?? []) {
        const rest = o.Key?.slice(blobsPrefix.length) ?? '';
        // ab/<hex>: anything else under the prefix (stray keys) is not a blob of ours
        const digest = rest.slice(3);
        if (rest.length === 67 && rest[2] === '/' && isDigest(digest) && digest.startsWith(rest.slice(0, 2))) yield { digest, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * A presigned GET of the blob's object: signed here with the SDK's
   * credentials (no request to the server), valid for `ttlSeconds` (SigV4
   * allows at most 7 days), for whoever holds the URL.
   */
  const presign = async (digest: string, ttlSeconds: number, opts: { contentType?: string } = {}): Promise<string> => {
    assertDigest(digest, 'blob presign');
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 7 * 24 * 3600) {
      throw new AirlockError('EUSAGE', `blob presign: a URL is valid from 1 s to 7 days, not ${ttlSeconds} s`, { sha256: digest, ttlSeconds });
    }
    try {
      return await getSignedUrl(
        client,
        new GetObjectCommand({ Bucket: bucket, Key: key(digest), ResponseContentType: opts.contentType }),
        { expiresIn: ttlSeconds },
      );
    } catch (e) {
      throw fail(e, `presign sha256:${digest}`, { sha256: digest });
    }
  };

  return {
    bucket,
    client,
    key,
    stat,
    presign,
    listSized,

    async read(digest: string, range?: ByteRange): Promise<Readable> {
      assertDigest(digest, 'blob read');
      if (range && (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end < range.start)) {
        throw outside(digest, range, (await stat(digest))?.size ?? null);
      }
      await ready();
      let res;
      try {
        res = await client.send(
          new GetObjectCommand({ Bucket: bucket, Key: key(digest), Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
        );
      } catch (e) {
        if (isMissing(e)) throw notFound(digest);
        if ((e as { name?: string }).name === 'InvalidRange' || (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) {
          const s = await stat(digest);
          if (!s) throw notFound(digest);
          throw outside(digest, range!, s.size);
        }
        throw fail(e, `read sha256:${digest}`, { sha256: digest });
      }
      const body = res.Body as Readable;
      if (range) {
        // S3 answers a range that runs past the end with what there is; the store refuses it, as the filesystem does
        const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.ContentRange ?? '');
        if (!m || Number(m[1]) !== range.start || Number(m[2]) !== range.end) {
          body.destroy();
          throw outside(digest, range, m ? Number(m[3]) : null);
        }
      }
      return body;
    },

    async writer(expected: BlobRef): Promise<BlobWriter> {
      assertDigest(expected.sha256, 'blob writer');
      if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
        throw new AirlockError('EUSAGE', `blob writer: size ${expected.size} is not a byte count`, { ...expected });
      }
      // already there: the bytes are still checked (the caller expects a verdict), nothing is sent
      const present = (await stat(expected.sha256)) !== null;
      return present || expected.size <= PART_SIZE ? smallWriter(expected, present) : multipartWriter(expected);
    },

    async adopt(expected: BlobRef, file: string): Promise<void> {
      assertDigest(expected.sha256, 'blob adopt');
      if (await stat(expected.sha256)) {
        await rm(file, { force: true });
        return;
      }
      const partSize = partSizeFor(expected.size);
      const md5s = await hashFile(file, expected, partSize);
      const Key = key(expected.sha256);
      const tag = `sha256:${expected.sha256}`;
      if (md5s.length === 1) {
        await withRetries(() =>
          client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key,
              Body: expected.size > 0 ? createReadStream(file) : Buffer.alloc(0),
              ContentLength: expected.size,
              ContentMD5: md5s[0],
              ContentType: 'application/octet-stream',
            }),
          ),
        ).catch((e: unknown) => {
          throw fail(e, `put ${tag}`, { sha256: expected.sha256 });
        });
      } else {
        let UploadId: string | undefined;
        try {
          ({ UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key, ContentType: 'application/octet-stream' })));
          const etags = new Array<string>(md5s.length);
          let next = 0;
          let failed = false;
          const lane = async (): Promise<void> => {
            while (!failed && next < md5s.length) {
              const i = next++;
              const start = i * partSize;
              const end = Math.min(expected.size, start + partSize) - 1;
              try {
                const r = await withRetries(() =>
                  client.send(
                    new UploadPartCommand({
                      Bucket: bucket,
                      Key,
                      UploadId,
                      PartNumber: i + 1,
                      Body: createReadStream(file, { start, end, highWaterMark: 256 * 1024 }),
                      ContentLength: end - start + 1,
                      ContentMD5: md5s[i],
                    }),
                  ),
                );
                etags[i] = r.ETag!;
              } catch (e) {
                failed = true;
                throw e;
              }
            }
          };
          await Promise.all(Array.from({ length: Math.min(QUEUE_SIZE, md5s.length) }, lane));
          await client.send(
            new CompleteMultipartUploadCommand({
              Bucket: bucket,
              Key,
              UploadId,
              MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
            }),
          );
        } catch (e) {
          if (UploadId) await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId })).catch(() => {});
          throw fail(e, `upload ${tag}`, { sha256: expected.sha256 });
        }
      }
      await rm(file, { force: true });
    },

    delete: remove,

    list: listKeys,

    async listAll(): Promise<string[]> {
      const out: string[] = [];
      for await (const d of listKeys()) out.push(d);
      return out;
    },

    async quarantine(digest: string): Promise<string> {
      assertDigest(digest, 'blob quarantine');
      await ready();
      const to = `${prefix}quarantine/${digest}.${new Date().toISOString().replace(/[:.]/g, '-')}`;
      try {
        await client.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: `${bucket}/${key(digest)}` }));
      } catch (e) {
        throw fail(e, `quarantine sha256:${digest}`, { sha256: digest });
      }
      await remove(digest);
      return `s3://${bucket}/${to}`;
    },

    async purgeQuarantine(dryRun: boolean): Promise<{ count: number; bytes: number }> {
      await ready();
      const out = { count: 0, bytes: 0 };
      let token: string | undefined;
      do {
        let page;
        try {
          page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}quarantine/`, ContinuationToken: token }));
        } catch (e) {
          throw fail(e, 'list quarantine');
        }
        for (const o of page.Contents ?? []) {
          out.count++;
          out.bytes += o.Size ?? 0;
          if (!dryRun) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key })).catch((e: unknown) => Promise.reject(fail(e, `delete ${o.Key}`)));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },

    shelf: () => s3Shelf({ client, bucket, prefix, ready, fail }),

    close(): void {
      client.destroy();
    },
  };

  /**
   * One pass over a local file: its sha256 and size must be the expected
   * ones (EINTEGRITY otherwise); returns the base64 MD5 of each part.
   */
  async function hashFile(file: string, expected: BlobRef, partSize: number): Promise<string[]> {
    const handle = await open(file, 'r');
    try {
      const sha = createHash('sha256');
      const md5s: string[] = [];
      let md5 = createHash('md5');
      let inPart = 0;
      let bytes = 0;
      const buf = Buffer.allocUnsafe(1024 * 1024);
      for (;;) {
        const want = Math.min(buf.length, partSize - inPart);
        const { bytesRead } = await handle.read(buf, 0, want, bytes);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        sha.update(chunk);
        md5.update(chunk);
        bytes += bytesRead;
        inPart += bytesRead;
        if (bytes > expected.size) break;
        if (inPart === partSize) {
          md5s.push(md5.digest('base64'));
          md5 = createHash('md5');
          inPart = 0;
        }
      }
      if (inPart > 0 || md5s.length === 0) md5s.push(md5.digest('base64'));
      const found = sha.digest('hex');
      if (bytes !== expected.size || found !== expected.sha256) {
        throw new AirlockError(
          'EINTEGRITY',
          `blob sha256:${expected.sha256}: expected ${expected.size} bytes with that digest, ${file} holds ${bytes} bytes with sha256:${found}`,
          { expected: { ...expected }, found: { sha256: found, size: bytes } },
        );
      }
      return md5s;
    } finally {
      await handle.close();
    }
  }

  /** The hashing side both writers share: counts, cuts at size + 1, and says whether the bytes are the expected ones. */
  function checker(expected: BlobRef): { add(chunk: Buffer): AirlockError | null; verdict(): AirlockError | null } {
    const hash = createHash('sha256');
    let bytes = 0;
    return {
      add(chunk) {
        bytes += chunk.length;
        if (bytes > expected.size) return tooLong(expected, bytes);
        hash.update(chunk);
        return null;
      },
      verdict() {
        const found = hash.digest('hex');
        if (bytes === expected.size && found === expected.sha256) return null;
        return new AirlockError(
          'EINTEGRITY',
          `blob sha256:${expected.sha256}: expected ${expected.size} bytes with that digest, got ${bytes} bytes with sha256:${found}`,
          { expected: { ...expected }, found: { sha256: found, size: bytes } },
        );
      },
    };
  }

  /** Held in memory, one PUT after the check (or none when the blob is already there). */
  function smallWriter(expected: BlobRef, present: boolean): BlobWriter {
    const check = checker(expected);
    const md5 = createHash('md5');
    const chunks: Buffer[] = [];
    let done = false;
    const stream = new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _enc, cb) {
        const err = check.add(chunk);
        if (err) return cb(err);
        if (!present) {
          md5.update(chunk);
          chunks.push(chunk);
        }
        cb();
      },
    });
    let streamError: Error | null = null;
    stream.on('error', (e) => {
      streamError ??= e;
    });
    return {
      stream,
      async commit() {
        if (done) throw new AirlockError('EINTERNAL', 'blob writer used twice');
        done = true;
        await finish(stream);
        if (streamError) throw streamError;
        const bad = check.verdict();
        if (bad) throw bad;
        if (present) return;
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        chunks.length = 0;
        try {
          await client.send(
            new PutObjectCommand({
              Bucket: bucket,
              Key: key(expected.sha256),
              Body: body,
              ContentLength: body.length,
              ContentMD5: md5.digest('base64'),
              ContentType: 'application/octet-stream',
            }),
          );
        } catch (e) {
          throw fail(e, `put sha256:${expected.sha256}`, { sha256: expected.sha256 });
        }
      },
      async cancel() {
        if (done) return;
        done = true;
        chunks.length = 0;
        stream.destroy();
      },
    };
  }

  /**
   * Streams into a multipart upload; the upload's body ends only when the
   * digest matched, else it fails and lib-storage aborts the upload.
   */
  function multipartWriter(expected: BlobRef): BlobWriter {
    const check = checker(expected);
    const body = new PassThrough({ highWaterMark: 1024 * 1024 });
    // its errors reach the upload (which aborts) and commit(); never an unhandled 'error'
    body.on('error', () => {});
    const partSize = partSizeFor(expected.size);
    const upload = new Upload({
      client,
      params: {
        Bucket: bucket,
        Key: key(expected.sha256),
        Body: body,
        ContentLength: expected.size,
        ContentType: 'application/octet-stream',
      },
      partSize,
      queueSize: QUEUE_SIZE,
      leavePartsOnError: false,
    });
    let done = false;
    let verdict: AirlockError | null = null;
    // settles, never rejects: the error is reported by commit()
    const uploaded: Promise<unknown> = upload.done().then(
      () => null,
      (e: unknown) => e ?? new Error('upload failed'),
    );
    const stream = new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _enc, cb) {
        const err = check.add(chunk);
        if (err) {
          body.destroy(err);
          return cb(err);
        }
        if (body.destroyed) return cb(body.errored ?? new Error('the upload failed'));
        if (body.write(chunk)) return cb();
        // the parts queue is full: wait for it (or for the upload to have failed)
        const go = (): void => {
          body.off('drain', go);
          body.off('close', go);
          cb();
        };
        body.on('drain', go);
        body.on('close', go);
      },
      final(cb) {
        verdict = check.verdict();
        if (verdict) body.destroy(verdict);
        else body.end();
        cb();
      },
      destroy(err, cb) {
        if (!body.writableFinished) body.destroy(err ?? new Error('blob writer cancelled'));
        cb(err);
      },
    });
    let streamError: Error | null = null;
    stream.on('error', (e) => {
      streamError ??= e;
    });
    // the upload failing (bucket gone, RGW down) must not leave a writer waiting for drain forever
    void uploaded.then((e) => {
      if (e && !stream.destroyed && !stream.writableFinished) stream.destroy(e as Error);
    });
    return {
      stream,
      async commit() {
        if (done) throw new AirlockError('EINTERNAL', 'blob writer used twice');
        done = true;
        try {
          await finish(stream);
        } catch {
          // reported below
        }
        if (streamError || verdict || !stream.writableFinished) {
          if (!body.destroyed) body.destroy(new Error('blob writer failed'));
          const e = await uploaded;
          if (streamError && isAirlockError(streamError)) throw streamError;
          if (verdict) throw verdict;
          throw fail(e ?? streamError, `upload sha256:${expected.sha256}`, { sha256: expected.sha256 });
        }
        const e = await uploaded;
        if (e) throw fail(e, `upload sha256:${expected.sha256}`, { sha256: expected.sha256 });
      },
      async cancel() {
        if (done) return;
        done = true;
        stream.destroy();
        if (!body.destroyed) body.destroy(new Error('blob writer cancelled'));
        await uploaded;
      },
    };
  }
}

/** A request whose body is a file stream, tried again (with a fresh stream) after a network failure or a 5xx. */
async function withRetries<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (e) {
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (attempt >= FILE_ATTEMPTS || (status !== undefined && status < 500)) throw e;
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
}

/** Ends a writer's stream (when the caller has not) and waits for its final step; rejects with its error. */
function finish(stream: Writable): Promise<void> {
  if (stream.writableFinished) return Promise.resolve();
  if (stream.destroyed) return Promise.reject(stream.errored ?? new Error('blob writer stream destroyed'));
  return new Promise<void>((resolve, reject) => {
    stream.once('error', reject);
    stream.end(() => resolve());
  });
}
