import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseDate, parseSize, type Schema } from '../../common/config.js';
import { AirlockError } from '../../manifests/errors.js';
import { loadConfig } from '../../server/config.js';

const SCHEMA: Schema = {
  cache_dir: { type: 'path' },
  parallel: { type: 'int', min: 1, max: 8 },
  margin: { type: 'size' },
  passthrough: { type: 'bool' },
  tls: { type: 'map', fields: { cert: { type: 'path' } } },
};

function withFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'airlock-config-'));
  const file = join(dir, 'airlock.yml');
  writeFileSync(file, text);
  return file;
}

function failure(fn: () => unknown): AirlockError {
  try {
    fn();
  } catch (e) {
    if (e instanceof AirlockError) return e;
    throw e;
  }
  throw new Error('expected a failure');
}

describe('loadConfigFile', () => {
  it('reads typed values and resolves paths against the file folder', () => {
    const file = withFile('cache_dir: cache\nparallel: 4\nmargin: 1G\npassthrough: true\ntls: {cert: c.pem}\n');
    const { values, path } = loadConfigFile(file, null, SCHEMA);
    expect(path).toBe(file);
    expect(values).toEqual({
      cache_dir: join(file, '..', 'cache'),
      parallel: 4,
      margin: 2 ** 30,
      passthrough: true,
      tls: { cert: join(file, '..', 'c.pem') },
    });
  });

  it('takes a size as a plain number of bytes too', () => {
    expect(loadConfigFile(withFile('margin: 0\n'), null, SCHEMA).values.margin).toBe(0);
  });

  it.each([
    ['cache_dri: x\n', /unknown key "cache_dri"/],
    ['parallel: 0\n', /key "parallel" must be at least 1/],
    ['parallel: many\n', /key "parallel" must be an integer/],
    ['margin: lots\n', /key "margin" must be a size/],
    ['passthrough: yes please\n', /key "passthrough" must be true or false/],
    ['tls: {key: k.pem}\n', /unknown key "tls.key"/],
    ['a: [\n', /invalid YAML/],
    ['- just\n- a list\n', /mapping of keys/],
    ['parallel: 1\nparallel: 2\n', /invalid YAML/],
  ])('refuses %j with one line naming the key', (text, message) => {
    const err = failure(() => loadConfigFile(withFile(text), null, SCHEMA));
    expect(err.code).toBe('EUSAGE');
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });

  it('uses the fallback only when it exists, and an explicit file must exist', () => {
    expect(loadConfigFile(undefined, '/nonexistent/airlock.yml', SCHEMA)).toEqual({ path: null, values: {} });
    expect(failure(() => loadConfigFile('/nonexistent/airlock.yml', null, SCHEMA)).code).toBe('EUSAGE');
  });
});

describe('parseSize and parseDate', () => {
  it.each([
    ['1048576', 1048576],
    ['512M', 512 * 2 ** 20],
    ['4G', 4 * 2 ** 30],
    ['4GiB', 4 * 2 ** 30],
    ['1.5k', 1536],
  ])('%s', (text, bytes) => expect(parseSize(text, 'x')).toBe(bytes));

  it('refuses nonsense', () => {
    expect(failure(() => parseSize('-1G', '--split')).message).toMatch(/--split: cannot read "-1G"/);
    expect(failure(() => parseDate('tomorrow', '--accept-expired-until')).code).toBe('EUSAGE');
  });

  it('reads a bare date as the end of that day (UTC)', () => {
    expect(parseDate('2027-03-01', 'x').toISOString()).toBe('2027-03-01T23:59:59.000Z');
  });
});

describe('server loadConfig', () => {
  it('has defaults, and flags override the file', () => {
    const file = withFile('cache_dir: /srv/cache\nparallel: 3\nlisten: 127.0.0.1:9000\n');
    const c = loadConfig({ config: file, parallel: '5' }, '/work');
    expect(c.cacheDir).toBe('/srv/cache');
    expect(c.parallel).toBe(5);
    expect(c.listen).toBe('127.0.0.1:9000');
    expect(Object.isFrozen(c)).toBe(true);
    const d = loadConfig({}, '/nonexistent-dir');
    expect(d.cacheDir).toBe('/nonexistent-dir/airlock-cache');
    expect(d.listen).toBe('0.0.0.0:7070');
    expect(d.trust).toBeNull();
  });

  it('refuses a bad --parallel and a bad listen address', () => {
    expect(failure(() => loadConfig({ parallel: '0' }, '/nonexistent-dir')).code).toBe('EUSAGE');
    expect(failure(() => loadConfig({ listen: 'everywhere' }, '/nonexistent-dir')).message).toMatch(/HOST:PORT/);
  });

  it('refuses a URL where a local path belongs, in flags and in the file, naming the flag or key', () => {
    for (const [flags, name] of [
      [{ trust: 'https://example.org/root.json' }, '--trust'],
      [{ cacheDir: 'http://127.0.0.1/cache' }, '--cache-dir'],
      [{ caFile: 'file:///etc/ssl/ca.pem' }, '--ca-file'],
    ] as const) {
      const e = failure(() => loadConfig(flags, '/nonexistent-dir'));
      expect(e.code).toBe('EUSAGE');
      expect(e.message).toContain(`${name}: "`);
      expect(e.message).toMatch(/not a URL/);
    }
    const file = withFile('trust: https://example.org/root.json\n');
    expect(failure(() => loadConfig({ config: file }, '/nonexistent-dir')).message).toMatch(/key "trust" must be a local path, not a URL/);
  });
});
