import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';
import { loadNodeConfig } from '../../client/config.js';

function dirWith(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-config-'));
  writeFileSync(join(dir, 'airlock.yml'), yaml);
  return dir;
}

describe('min_rate / rate_window', () => {
  it('default to 1 KiB/s over 60 s', () => {
    const c = loadConfig({}, mkdtempSync(join(tmpdir(), 'airlock-config-')));
    expect([c.minRate, c.rateWindowMs]).toEqual([1024, 60_000]);
  });

  it('are read from airlock.yml (a size, seconds) and flags win', () => {
    const dir = dirWith('min_rate: 4K\nrate_window: 30\n');
    expect(loadConfig({}, dir)).toMatchObject({ minRate: 4096, rateWindowMs: 30_000 });
    expect(loadConfig({ minRate: '0', rateWindow: '5' }, dir)).toMatchObject({ minRate: 0, rateWindowMs: 5000 });
  });

  it.each([
    [{ minRate: 'fast' }, /--min-rate must be bytes per second/],
    [{ rateWindow: '0' }, /--rate-window must be a number of seconds from 1 to 3600/],
    [{ rateWindow: '1.5' }, /--rate-window/],
  ])('a bad flag %j is EUSAGE', (flags, message) => {
    expect(() => loadConfig(flags, mkdtempSync(join(tmpdir(), 'airlock-config-')))).toThrow(message);
  });

  it('a bad value in the file names the key', () => {
    expect(() => loadConfig({}, dirWith('rate_window: 0\n'))).toThrow(/key "rate_window" must be at least 1/);
    expect(() => loadConfig({}, dirWith('min_rate: lots\n'))).toThrow(/key "min_rate" must be a size/);
  });

  it('the node client reads the same keys from its config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-node-config-'));
    const file = join(dir, 'node.yml');
    writeFileSync(file, 'min_rate: 512\nrate_window: 20\n');
    expect(loadNodeConfig({ config: file }, dir, null)).toMatchObject({ minRate: 512, rateWindowMs: 20_000 });
    expect(loadNodeConfig({}, dir, null)).toMatchObject({ minRate: 1024, rateWindowMs: 60_000 });
  });
});

describe('accel_redirect', () => {
  it('is off by default and read as a location path', () => {
    expect(loadConfig({}, mkdtempSync(join(tmpdir(), 'airlock-config-'))).accelRedirect).toBeNull();
    expect(loadConfig({}, dirWith('accel_redirect: /_airlock_blobs/\n')).accelRedirect).toBe('/_airlock_blobs/');
    expect(loadConfig({}, dirWith('accel_redirect: /internal/blobs/\n')).accelRedirect).toBe('/internal/blobs/');
  });

  it.each(['_airlock_blobs/', '/_airlock_blobs', '/', '/a b/', '/a/../', 'http://x/y/', '/a\r\nX-Evil: 1/'])(
    '%j is EUSAGE naming the key',
    (value) => {
      expect(() => loadConfig({}, dirWith(`accel_redirect: ${JSON.stringify(value)}\n`))).toThrow(/accel_redirect must be a location path/);
    },
  );
});
