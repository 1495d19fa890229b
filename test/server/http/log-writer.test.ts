/** LogWriter: every line, in order, written together behind the write in flight; flush waits for them; a stalled log drops and counts. */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogWriter } from '../../../server/http/log-writer.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function logFile(): { fd: number; text: () => string } {
  const d = mkdtempSync(join(tmpdir(), 'airlock-log-writer-'));
  dirs.push(d);
  const fd = openSync(join(d, 'log'), 'w');
  return { fd, text: () => readFileSync(join(d, 'log'), 'utf8') };
}

const flushed = (w: LogWriter): Promise<void> => new Promise((res, rej) => w.flush((err) => (err ? rej(err) : res())));

describe('LogWriter', () => {
  it('writes every line in order, those that came during a write with the next one; flush calls back once they are out', async () => {
    const f = logFile();
    const w = new LogWriter(f.fd);
    const lines = Array.from({ length: 5000 }, (_, i) => `{"n":${i}}\n`);
    for (const l of lines) expect(w.write(l)).toBe(true);
    await flushed(w);
    expect(f.text()).toBe(lines.join(''));
    w.write('{"last":true}\n');
    await flushed(w);
    expect(f.text().endsWith('{"last":true}\n')).toBe(true);
    await flushed(w); // nothing waiting: calls back all the same
    closeSync(f.fd);
  });

  it('past maxPending waiting bytes drops lines, and says how many once it writes again', async () => {
    const f = logFile();
    const w = new LogWriter(f.fd, 100);
    w.write('first\n'); // in flight at once
    const kept = Array.from({ length: 10 }, (_, i) => `line ${i}\n`); // 70 bytes wait
    for (const l of kept) expect(w.write(l)).toBe(true);
    expect(w.write('x'.repeat(40) + '\n')).toBe(false);
    await flushed(w);
    const text = f.text();
    expect(text.startsWith('first\n' + kept.join(''))).toBe(true);
    expect(text).not.toContain('xxxx');
    expect(JSON.parse(text.trim().split('\n').at(-1)!)).toMatchObject({ level: 40, dropped: 1 });
    closeSync(f.fd);
  });

  it('flushSync writes the lines waiting behind the write in flight, at once', async () => {
    const f = logFile();
    const w = new LogWriter(f.fd);
    w.write('a\n'); // in flight on its own
    w.write('b\n'); // waits behind it
    w.flushSync();
    expect(f.text()).toContain('b\n');
    await flushed(w);
    expect(f.text().split('\n').sort()).toEqual(['', 'a', 'b']);
    closeSync(f.fd);
  });
});
