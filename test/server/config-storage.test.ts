import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { backendFromConfig } from '../../storage/backend/select.js';

function dirWith(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-config-'));
  writeFileSync(join(dir, 'airlock.yml'), yaml);
  return dir;
}

describe('storage: (where blobs live)', () => {
  it('is the filesystem under cache_dir by default, and with backend: fs', async () => {
    const c = loadConfig({}, mkdtempSync(join(tmpdir(), 'airlock-config-')));
    expect(c.storage).toEqual({ backend: 'fs' });
    expect(await backendFromConfig(c)).toBeUndefined();
    expect(loadConfig({}, dirWith('storage: {backend: fs}\n')).storage).toEqual({ backend: 'fs' });
  });

  it('reads an S3 bucket: endpoint, bucket, prefix "" allowed, region and path style defaulted', async () => {
    const c = loadConfig({}, dirWith('storage:\n  backend: s3\n  s3: {endpoint: "http://127.0.0.1:7480/", bucket: airlock, prefix: ""}\n'));
    expect(c.storage).toEqual({
      backend: 's3',
      s3: { endpoint: 'http://127.0.0.1:7480', bucket: 'airlock', prefix: '', region: 'us-east-1', forcePathStyle: true, pollMs: 5000, gcGraceMs: 3_600_000 },
    });
    const b = (await backendFromConfig(c)) as unknown as { bucket: string; key(d: string): string; close(): void };
    expect(b.bucket).toBe('airlock');
    expect(b.key('ab'.repeat(32))).toBe(`blobs/sha256/ab/${'ab'.repeat(32)}`);
    b.close();
    const aws = loadConfig({}, dirWith('storage: {backend: s3, s3: {bucket: my-cache, prefix: sites/a, region: eu-west-1}}\n'));
    expect(aws.storage).toEqual({
      backend: 's3',
      s3: { endpoint: null, bucket: 'my-cache', prefix: 'sites/a', region: 'eu-west-1', forcePathStyle: false, pollMs: 5000, gcGraceMs: 3_600_000 },
    });
  });

  it('reads how often serve polls the bucket\'s release records and gc\'s grace as durations', () => {
    const c = loadConfig({}, dirWith('storage: {backend: s3, s3: {bucket: abc, poll: 500ms, gc_grace: 30m}}\n'));
    expect(c.storage).toMatchObject({ s3: { pollMs: 500, gcGraceMs: 1_800_000 } });
    expect(loadConfig({}, dirWith('storage: {backend: s3, s3: {bucket: abc, gc_grace: "0"}}\n')).storage).toMatchObject({ s3: { gcGraceMs: 0 } });
  });

  it.each([
    ['storage: {backend: s3}\n', /storage.s3.bucket is needed/],
    ['storage: {backend: s3, s3: {bucket: AB}}\n', /storage.s3.bucket must be an S3 bucket name/],
    ['storage: {backend: s3, s3: {bucket: abc, endpoint: "127.0.0.1:7480"}}\n', /storage.s3.endpoint must be an http\(s\) URL/],
    ['storage: {backend: s3, s3: {bucket: abc, endpoint: "http://h/path"}}\n', /storage.s3.endpoint must be/],
    ['storage: {backend: s3, s3: {bucket: abc, prefix: "../x"}}\n', /storage.s3.prefix must be/],
    ['storage: {backend: gcs}\n', /storage.backend" must be one of fs, s3/],
    ['storage: {backend: s3, s3: {bucket: abc, access_key: x}}\n', /unknown key "storage.s3.access_key"/],
    ['storage: {backend: s3, s3: {bucket: abc, poll: soon}}\n', /storage.s3.poll: cannot read "soon" as a duration/],
    ['storage: {backend: s3, s3: {bucket: abc, poll: 10ms}}\n', /storage.s3.poll must be at least 100 ms/],
  ])('%s is one EUSAGE line', (yaml, message) => {
    expect(() => loadConfig({}, dirWith(yaml))).toThrow(expect.objectContaining({ code: 'EUSAGE', message: expect.stringMatching(message) }));
  });
});
