/**
 * The S3 RecordShelf: release records as small objects beside the blobs,
 * `PREFIX/<key>` (paths.ts names the keys). Each record is one PUT with its
 * Content-MD5, so an object is always whole, and its ETag (the MD5 of a
 * single PUT on RGW, MinIO and AWS without KMS) tells a reader whether its
 * local copy is current without fetching it.
 *
 * It shares the S3 backend's client, bucket check and error lines
 * (backend.shelf() in s3.ts).
 */
import { createHash } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { AirlockError } from '../../manifests/errors.js';
import type { RecordShelf, ShelfEntry } from '../types.js';

export interface S3ShelfContext {
  client: S3Client;
  bucket: string;
  /** normalised: "" or "a/b/" */
  prefix: string;
  /** resolves once the bucket answered (one HeadBucket per process) */
  ready(): Promise<void>;
  /** an SDK failure as one AirlockError line */
  fail(e: unknown, what: string, details?: Record<string, unknown>): AirlockError;
}

const isMissing = (e: unknown): boolean => {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  return err.name === 'NotFound' || err.name === 'NoSuchKey' || err.$metadata?.httpStatusCode === 404;
};

const unquote = (etag: string | undefined): string => (etag ?? '').replace(/^"|"$/g, '');

export function s3Shelf(ctx: S3ShelfContext): RecordShelf {
  const { client, bucket, prefix } = ctx;
  const full = (key: string): string => `${prefix}${key}`;
  return {
    where: `s3://${bucket}/${prefix}`,

    async get(key) {
      await ctx.ready();
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: full(key) }));
        const bytes = Buffer.from(await res.Body!.transformToByteArray());
        return { bytes, etag: unquote(res.ETag) };
      } catch (e) {
        if (isMissing(e)) return null;
        throw ctx.fail(e, `read ${full(key)}`, { key: full(key) });
      }
    },

    async put(key, bytes) {
      await ctx.ready();
      try {
        const res = await client.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: full(key),
            Body: bytes,
            ContentLength: bytes.length,
            ContentMD5: createHash('md5').update(bytes).digest('base64'),
            ContentType: 'application/json',
          }),
        );
        return unquote(res.ETag);
      } catch (e) {
        throw ctx.fail(e, `put ${full(key)}`, { key: full(key) });
      }
    },

    async delete(key) {
      await ctx.ready();
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: full(key) }));
      } catch (e) {
        if (isMissing(e)) return;
        throw ctx.fail(e, `delete ${full(key)}`, { key: full(key) });
      }
    },

    async list(folder) {
      await ctx.ready();
      const base = `${prefix}${folder.replace(/\/+$/, '')}/`;
      const out: ShelfEntry[] = [];
      let token: string | undefined;
      do {
        let page;
        try {
          page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: base, Delimiter: '/', ContinuationToken: token }));
        } catch (e) {
          throw ctx.fail(e, `list ${base}`, { prefix: base });
        }
        for (const o of page.Contents ?? []) {
          if (!o.Key || o.Key.length <= base.length) continue;
          out.push({ name: o.Key.slice(base.length), etag: unquote(o.ETag), size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0 });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return out;
    },
  };
}
