import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAirlockError } from '../../manifests/errors.js';
import { loadConfig } from '../../server/config.js';

const S3 = 'storage: {backend: s3, s3: {endpoint: "http://127.0.0.1:7480", bucket: airlock}}\n';

function dirWith(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-config-'));
  writeFileSync(join(dir, 'airlock.yml'), yaml);
  return dir;
}

const failure = (yaml: string): { code: string; message: string } => {
  try {
    loadConfig({}, dirWith(yaml));
  } catch (e) {
    if (isAirlockError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected the config to be refused');
};

describe('redirect_blobs and redirect_ttl', () => {
  it('is off by default; on with blobs in S3, valid 15 minutes unless redirect_ttl says otherwise', () => {
    expect(loadConfig({}, dirWith(S3)).redirectBlobs).toBeNull();
    expect(loadConfig({}, dirWith(`${S3}redirect_blobs: false\n`)).redirectBlobs).toBeNull();
    expect(loadConfig({}, dirWith(`${S3}redirect_blobs: true\n`)).redirectBlobs).toEqual({ ttlSeconds: 900 });
    for (const [ttl, seconds] of [['90s', 90], ['15m', 900], ['2h', 7200], ['7d', 604_800], ['300', 300], [600, 600]] as const) {
      expect(loadConfig({}, dirWith(`${S3}redirect_blobs: true\nredirect_ttl: ${ttl}\n`)).redirectBlobs).toEqual({ ttlSeconds: seconds });
    }
  });

  it('is refused in one line with blobs on the filesystem, and a TTL that is not a duration or is past 7 days', () => {
    const fs = failure('redirect_blobs: true\n');
    expect(fs.code).toBe('EUSAGE');
    expect(fs.message).toMatch(/redirect_blobs needs blobs in S3 \(storage.backend: s3\)/);
    expect(fs.message).not.toContain('\n');
    expect(failure(`${S3}redirect_blobs: true\nredirect_ttl: 8d\n`).message).toMatch(/"redirect_ttl" must be at most 604800 s/);
    expect(failure(`${S3}redirect_blobs: true\nredirect_ttl: 0\n`).message).toMatch(/"redirect_ttl" must be at least 1 s/);
    expect(failure(`${S3}redirect_blobs: true\nredirect_ttl: soon\n`).message).toMatch(/"redirect_ttl" must be a duration such as 15m/);
    expect(failure(`${S3}redirect_blobs: yes please\n`).message).toMatch(/"redirect_blobs" must be true or false/);
  });
});
