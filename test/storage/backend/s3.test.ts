/**
 * The S3 backend against a REAL Ceph RGW (one cluster for this file): the same
 * conformance suite as the filesystem backend, each test on a fresh key
 * prefix; then what only S3 has (multipart for big blobs, aborts, the
 * bucket's own errors).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PART_SIZE, s3Backend, type S3BlobBackend } from '../../../storage/backend/s3.js';
import { backendSuite, ref, sha } from '../backend-suite.js';
import { skipWithoutCeph, startCeph, type Ceph } from '../../support/ceph.js';

const BUCKET = 'airlock-test';
let ceph: Ceph;
let n = 0;

function backend(prefix = `t${++n}-${randomBytes(3).toString('hex')}`): S3BlobBackend {
  return s3Backend({ endpoint: ceph.endpoint, bucket: BUCKET, prefix, credentials: ceph.credentials });
}

async function put(b: S3BlobBackend, body: Buffer, expected = ref(body)): Promise<void> {
  const w = await b.writer(expected);
  try {
    await pipeline(Readable.from(chunks(body)), w.stream);
  } catch (e) {
    await w.cancel();
    throw e;
  }
  await w.commit();
}

function* chunks(body: Buffer, size = 1024 * 1024): Generator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size);
}

async function pendingUploads(b: S3BlobBackend): Promise<number> {
  const r = await ceph.client().send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
  return (r.Uploads ?? []).filter((u) => u.Key?.startsWith(b.key('0'.repeat(64)).split('/blobs/')[0]!)).length;
}

describe.skipIf(skipWithoutCeph)('s3 backend on a real Ceph RGW', () => {
  beforeAll(async () => {
    ceph = await startCeph();
    await ceph.createBucket(BUCKET);
  }, 150_000);
  afterAll(async () => {
    await ceph?.stop();
  });

  backendSuite('s3 (Ceph RGW)', async () => {
    const b = backend();
    return { backend: b, cleanup: async () => b.close() };
  });

  it('a big blob goes up in parallel parts, only whole and verified; a wrong one leaves no object and no upload', async () => {
    const b = backend();
    const body = randomBytes(3 * PART_SIZE + 12345);
    await put(b, body);
    expect((await b.stat(sha(body)))?.size).toBe(body.length);
    const back: Buffer[] = [];
    for await (const c of await b.read(sha(body))) back.push(c as Buffer);
    expect(sha(Buffer.concat(back))).toBe(sha(body));
    const tail: Buffer[] = [];
    for await (const c of await b.read(sha(body), { start: body.length - 10, end: body.length - 1 })) tail.push(c as Buffer);
    expect(Buffer.concat(tail)).toEqual(body.subarray(body.length - 10));

    // the same size, one byte flipped at the end: every part but the last went up, then the digest failed
    const claimed = ref(randomBytes(body.length));
    const wrong = Buffer.from(body);
    const err = await put(b, wrong, claimed).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'EINTEGRITY', details: { expected: claimed, found: { sha256: sha(wrong), size: wrong.length } } });
    expect(await b.stat(claimed.sha256)).toBeNull();
    expect(await pendingUploads(b)).toBe(0);

    // cancelled half-way: aborted too
    const w = await b.writer(ref(randomBytes(2 * PART_SIZE + 1)));
    for (const c of chunks(body.subarray(0, PART_SIZE + 4096))) w.stream.write(c);
    await new Promise((r) => setTimeout(r, 200));
    await w.cancel();
    expect(await pendingUploads(b)).toBe(0);
    expect((await b.listAll()).sort()).toEqual([sha(body)]);
    b.close();
  });

  it('adopt uploads a local file in parts from the file itself, removes it, and refuses one whose bytes are not the expected ones', async () => {
    const b = backend();
    const dir = await mkdtemp(join(tmpdir(), 'airlock-s3-adopt-'));
    try {
      const body = randomBytes(2 * PART_SIZE + 999);
      const file = join(dir, 'partial');
      await writeFile(file, body);
      await b.adopt(ref(body), file);
      expect(existsSync(file)).toBe(false);
      const back: Buffer[] = [];
      for await (const c of await b.read(sha(body))) back.push(c as Buffer);
      expect(sha(Buffer.concat(back))).toBe(sha(body));
      for (const small of [Buffer.from('one PUT'), Buffer.alloc(0)]) {
        await writeFile(file, small);
        await b.adopt(ref(small), file);
        expect((await b.stat(sha(small)))?.size).toBe(small.length);
      }
      // a file that is not what it claims: nothing is uploaded, no multipart upload is left
      await writeFile(file, body);
      const claimed = ref(randomBytes(body.length));
      await expect(b.adopt(claimed, file)).rejects.toMatchObject({ code: 'EINTEGRITY', details: { found: { sha256: sha(body) } } });
      expect(await b.stat(claimed.sha256)).toBeNull();
      expect(await pendingUploads(b)).toBe(0);
      // what adopt relies on: RGW refuses a body that does not match its Content-MD5
      const lie = ceph.client().send(
        new PutObjectCommand({ Bucket: BUCKET, Key: b.key(sha('x')), Body: Buffer.from('y'), ContentMD5: createHash('md5').update('x').digest('base64') }),
      );
      await expect(lie).rejects.toMatchObject({ name: 'BadDigest' });
      expect(await b.stat(sha('x'))).toBeNull();
    } finally {
      b.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a blob already in the bucket is not sent again; verify finds an overwritten object and quarantines it', async () => {
    const b = backend();
    const body = Buffer.from('content is content');
    await put(b, body);
    const before = (await b.stat(sha(body)))!.mtimeMs;
    await new Promise((r) => setTimeout(r, 1100));
    await put(b, body);
    expect((await b.stat(sha(body)))!.mtimeMs).toBe(before);
    // a blob's bytes replaced behind airlock's back
    await ceph.client().send(new PutObjectCommand({ Bucket: BUCKET, Key: b.key(sha(body)), Body: Buffer.from('content is CONTENT') }));
    const to = await b.quarantine(sha(body));
    expect(to).toMatch(new RegExp(`^s3://${BUCKET}/.*/quarantine/${sha(body)}\\.`));
    expect(await b.stat(sha(body))).toBeNull();
    b.close();
  });

  it('a missing bucket, wrong keys and a dead endpoint are one-line errors', async () => {
    const none = s3Backend({ endpoint: ceph.endpoint, bucket: 'no-such-bucket', credentials: ceph.credentials });
    await expect(none.stat(sha('x'))).rejects.toMatchObject({ code: 'EUSAGE', message: expect.stringContaining('bucket does not exist') });
    const badKeys = s3Backend({ endpoint: ceph.endpoint, bucket: BUCKET, credentials: { accessKeyId: 'NOPE', secretAccessKey: 'nope' } });
    await expect(badKeys.stat(sha('x'))).rejects.toMatchObject({ code: 'EUSAGE', message: expect.stringContaining('access denied') });
    const dead = s3Backend({ endpoint: 'http://127.0.0.1:1', bucket: BUCKET, credentials: ceph.credentials });
    await expect(dead.stat(sha('x'))).rejects.toMatchObject({ code: 'EUPSTREAM' });
    for (const b of [none, badKeys, dead]) b.close();
  });
});
