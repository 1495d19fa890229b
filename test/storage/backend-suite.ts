/**
 * The conformance suite every BlobBackend runs (distribution's testsuites):
 *
 *   import { backendSuite } from '../backend-suite.js';
 *   backendSuite('fs', async () => ({ backend: fsBackend(await tmp()), cleanup }));
 */
import { closeSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { text } from 'node:stream/consumers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BlobBackend } from '../../storage/types.js';
import { sha256 } from '../support/release.js';

export interface BackendFixture {
  backend: BlobBackend;
  cleanup?: () => Promise<void>;
}

export const sha = sha256;
export const ref = (b: string | Buffer): { sha256: string; size: number } => ({ sha256: sha(b), size: Buffer.byteLength(b) });

async function put(backend: BlobBackend, body: string | Buffer, expected = ref(body)): Promise<void> {
  const w = await backend.writer(expected);
  try {
    await pipeline(Readable.from([Buffer.from(body)]), w.stream);
  } catch (e) {
    await w.cancel();
    throw e;
  }
  await w.commit();
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const d of it) out.push(d);
  return out;
}

export function backendSuite(name: string, make: () => Promise<BackendFixture>): void {
  describe(`BlobBackend conformance: ${name}`, () => {
    let fx: BackendFixture;
    let b: BlobBackend;
    beforeEach(async () => {
      fx = await make();
      b = fx.backend;
    });
    afterEach(async () => {
      await fx.cleanup?.();
    });

    it('stat of an absent blob is null; read is ENOTFOUND', async () => {
      expect(await b.stat(sha('nope'))).toBeNull();
      await expect(b.read(sha('nope'))).rejects.toMatchObject({ code: 'ENOTFOUND' });
    });

    it('writes, stats, reads whole and by inclusive range, lists, deletes', async () => {
      const body = 'hello, airlock';
      await put(b, body);
      expect((await b.stat(sha(body)))?.size).toBe(body.length);
      expect(await text(await b.read(sha(body)))).toBe(body);
      expect(await text(await b.read(sha(body), { start: 7, end: 13 }))).toBe('airlock');
      expect(await text(await b.read(sha(body), { start: 0, end: 0 }))).toBe('h');
      expect(await collect(b.list())).toEqual([sha(body)]);
      await b.delete(sha(body));
      expect(await b.stat(sha(body))).toBeNull();
      expect(await collect(b.list())).toEqual([]);
      await b.delete(sha(body)); // deleting twice is fine
    });

    it('a range outside the blob is refused', async () => {
      await put(b, 'abc');
      await expect(b.read(sha('abc'), { start: 2, end: 3 })).rejects.toMatchObject({ code: 'EUSAGE' });
      await expect(b.read(sha('abc'), { start: 2, end: 1 })).rejects.toMatchObject({ code: 'EUSAGE' });
    });

    it('a wrong digest is refused with EINTEGRITY (expected vs found) and never becomes visible', async () => {
      const claimed = ref('right');
      const err = await put(b, 'wrong', claimed).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'EINTEGRITY', details: { expected: claimed, found: { sha256: sha('wrong'), size: 5 } } });
      expect(await b.stat(claimed.sha256)).toBeNull();
      expect(await collect(b.list())).toEqual([]);
    });

    it('a short body is refused (size)', async () => {
      const claimed = { sha256: sha('abcdef'), size: 6 };
      await expect(put(b, 'abc', claimed)).rejects.toMatchObject({ code: 'EINTEGRITY' });
      expect(await b.stat(claimed.sha256)).toBeNull();
    });

    it('a body longer than size is cut at size+1 and refused', async () => {
      const claimed = { sha256: sha('abc'), size: 3 };
      const w = await b.writer(claimed);
      let written = 0;
      // endless data: the writer must stop it, not wait for the end
      const source = new Readable({
        read() {
          written += 65536;
          this.push(Buffer.alloc(65536, 'a'));
        },
      });
      await expect(pipeline(source, w.stream)).rejects.toMatchObject({ code: 'EINTEGRITY' });
      await expect(w.commit()).rejects.toMatchObject({ code: 'EINTEGRITY' });
      expect(written).toBeLessThan(16 * 1024 * 1024);
      expect(await b.stat(claimed.sha256)).toBeNull();
    });

    it('an existing blob makes a second identical commit a success (content is content)', async () => {
      await put(b, 'same');
      await put(b, 'same');
      expect(await collect(b.list())).toEqual([sha('same')]);
    });

    it('cancel throws the bytes away', async () => {
      const w = await b.writer(ref('gone'));
      w.stream.write('gone');
      await w.cancel();
      expect(await b.stat(sha('gone'))).toBeNull();
    });

    it('an empty blob works', async () => {
      await put(b, '');
      expect((await b.stat(sha('')))?.size).toBe(0);
      expect(await text(await b.read(sha('')))).toBe('');
    });

    it('digests that are not 64 lowercase hex never reach the backend', async () => {
      await expect(b.writer({ sha256: '../../etc/passwd', size: 1 })).rejects.toMatchObject({ code: 'EPATH' });
      await expect(b.stat('ABC')).rejects.toMatchObject({ code: 'EPATH' });
      await expect(b.read(sha('x').toUpperCase())).rejects.toMatchObject({ code: 'EPATH' });
    });

    it('open (backends with descriptors): the size from that descriptor and its bytes; null when absent', async () => {
      if (!b.open) return; // optional: a backend without it is served through read
      expect(await b.open(sha('nope'))).toBeNull();
      await expect(b.open(sha('x').toUpperCase())).rejects.toMatchObject({ code: 'EPATH' });
      for (const body of ['hello, airlock', '']) {
        await put(b, body);
        const blob = (await b.open(sha(body)))!;
        try {
          expect(blob.size).toBe(body.length);
          const got = Buffer.alloc(blob.size + 1);
          expect(readSync(blob.fd, got, 0, got.length, 0)).toBe(body.length);
          expect(got.subarray(0, body.length).toString()).toBe(body);
        } finally {
          closeSync(blob.fd);
        }
      }
    });

    it('lists many blobs, each once', async () => {
      const bodies = Array.from({ length: 40 }, (_, i) => `blob ${i}`);
      await Promise.all(bodies.map((x) => put(b, x)));
      expect((await collect(b.list())).sort()).toEqual(bodies.map(sha).sort());
    });
  });
}
