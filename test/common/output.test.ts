import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createOutput, humanBytes } from '../../common/output.js';
import { AirlockError } from '../../manifests/errors.js';

function sink(): Writable & { text: () => string; isTTY?: boolean } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { text: () => string };
  w.text = () => chunks.join('');
  return w;
}

describe('createOutput', () => {
  it('prints one JSON object per line in --json mode, ending with ok or an error', () => {
    const stdout = sink();
    const stderr = sink();
    const out = createOutput(true, { stdout, stderr });
    out.note('staging', { files: 3 });
    out.event('fetched', { path: 'a' });
    out.result({ release: '1.0' }, 'ignored');
    out.failure(new AirlockError('EINTEGRITY', 'digest mismatch', { expected: 'a', found: 'b' }));
    const lines = stdout.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { event: 'note', message: 'staging', files: 3 },
      { event: 'fetched', path: 'a' },
      { ok: true, release: '1.0' },
      { ok: false, error: { code: 'EINTEGRITY', message: 'digest mismatch', details: { expected: 'a', found: 'b' } } },
    ]);
    expect(stderr.text()).toBe('');
  });

  it('prints results on stdout and one-line errors on stderr for humans', () => {
    const stdout = sink();
    const stderr = sink();
    const out = createOutput(false, { stdout, stderr });
    out.event('fetched', { path: 'a' });
    out.note('hello');
    out.result({}, 'ready');
    out.failure(new AirlockError('ENOTFOUND', 'release "9" is not in the cache'));
    expect(stdout.text()).toBe('ready\n');
    expect(stderr.text()).toBe('hello\nairlock: ENOTFOUND: release "9" is not in the cache\n');
  });

  it('draws no progress bar when stderr is not a terminal', () => {
    const stderr = sink();
    const bar = createOutput(false, { stdout: sink(), stderr }).progress('stage', 100);
    bar.update(50);
    bar.stop();
    expect(stderr.text()).toBe('');
  });

  it('formats bytes', () => {
    expect(humanBytes(512)).toBe('512 B');
    expect(humanBytes(1536)).toBe('1.5 KiB');
    expect(humanBytes(3 * 2 ** 30)).toBe('3.0 GiB');
  });
});
