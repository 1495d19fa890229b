import { describe, expect, it } from 'vitest';
import { appendFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { appendJournal, finishedSteps, readJournal, stepKey } from '../../client/journal.js';
import { journalFile, statePaths } from '../../client/state.js';
import { isAirlockError } from '../../manifests/errors.js';
import { sandbox } from './install/hostile.js';

const entry = { step: 0, path: 'components/app.tgz', kind: 'file', sha256: 'a'.repeat(64), note: 'done' };

/** The state dir inside the root, where a package could have planted links. */
function stateInRoot() {
  const s = sandbox('journal');
  const state = statePaths(join(s.root, 'var', 'lib', 'airlock-node'));
  mkdirSync(state.dir, { recursive: true });
  return { ...s, state };
}

describe('journal', () => {
  it('appends and reads back', () => {
    const { state } = stateInRoot();
    appendJournal(journalFile(state, '1.0.0'), entry);
    expect(readJournal(journalFile(state, '1.0.0'))).toMatchObject([entry]);
  });

  it('refuses with EPATH when STATE/journal is a link leading out', () => {
    const { state, outside } = stateInRoot();
    symlinkSync('../../../../escaped', state.journal);
    let err: unknown;
    try {
      appendJournal(journalFile(state, '1.0.0'), entry);
    } catch (e) {
      err = e;
    }
    expect(outside()).toEqual([]);
    expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
    expect((err as Error).message).not.toMatch(/\n/);
  });

  it('refuses with EPATH when the journal file itself is a link leading out', () => {
    const { state, escaped, outside } = stateInRoot();
    mkdirSync(state.journal);
    symlinkSync(join(escaped, 'owned.jsonl'), journalFile(state, '1.0.0'));
    expect(() => appendJournal(journalFile(state, '1.0.0'), entry)).toThrow(/EPATH|link/);
    expect(() => readJournal(journalFile(state, '1.0.0'))).toThrow(/link/);
    expect(outside()).toEqual([]);
    expect(readdirSync(state.journal)).toEqual(['1.0.0.jsonl']);
    expect(() => readFileSync(journalFile(state, '1.0.0'))).toThrow();
  });
});

describe('journal resume', () => {
  const step = (n: number, digest = String(n).repeat(64)) => ({ step: n, path: `components/c${n}.tgz`, kind: 'file', sha256: digest });

  it('no journal yet: no step finished', () => {
    const { state } = stateInRoot();
    expect(finishedSteps(journalFile(state, '1.0.0')).size).toBe(0);
  });

  it('a crash mid-append leaves a torn last line: the steps before it are finished, the torn one runs again', () => {
    const { state } = stateInRoot();
    const file = journalFile(state, '1.0.0');
    appendJournal(file, step(0));
    appendJournal(file, step(1));
    // step 2's line, cut off before its end (no closing brace, no newline)
    const whole = JSON.stringify({ ...step(2), at: new Date().toISOString() });
    appendFileSync(file, whole.slice(0, whole.length - 20));
    const done = finishedSteps(file);
    expect([...done]).toEqual([stepKey(step(0)), stepKey(step(1))]);
    expect(done.has(stepKey(step(2)))).toBe(false);
  });

  it('the re-run appends on a new line after the torn one, so its own line stays whole and counts', () => {
    const { state } = stateInRoot();
    const file = journalFile(state, '1.0.0');
    appendJournal(file, step(0));
    appendFileSync(file, '{"step":1,"path":"compo');
    appendJournal(file, step(1));
    const lines = readFileSync(file, 'utf8').split('\n');
    expect(lines).toHaveLength(4); // step 0, the torn fragment, step 1, '' after the last newline
    expect(lines[1]).toBe('{"step":1,"path":"compo');
    expect(readJournal(file).map((e) => e.step)).toEqual([0, 1]);
    expect(finishedSteps(file)).toEqual(new Set([stepKey(step(0)), stepKey(step(1))]));
  });

  it('a line for the same step of another digest (the manifest changed) does not finish it; lines missing a field are ignored', () => {
    const { state } = stateInRoot();
    const file = journalFile(state, '1.0.0');
    appendJournal(file, step(0, 'a'.repeat(64)));
    appendFileSync(file, `${JSON.stringify({ step: 1, path: 'components/c1.tgz' })}\n[]\nnull\n`);
    const done = finishedSteps(file);
    expect(done.has(stepKey(step(0, 'a'.repeat(64))))).toBe(true);
    expect(done.has(stepKey(step(0, 'b'.repeat(64))))).toBe(false);
    expect(done.has(stepKey({ ...step(0, 'a'.repeat(64)), step: 1 }))).toBe(false);
    expect(done.size).toBe(1);
  });

  it('each entry keeps its kind, note and a timestamp', () => {
    const { state } = stateInRoot();
    const file = journalFile(state, '1.0.0');
    appendJournal(file, { ...step(0), note: 'extracted 3 file(s)' });
    const [e] = readJournal(file);
    expect(e).toMatchObject({ ...step(0), note: 'extracted 3 file(s)' });
    expect(Date.parse(e!.at)).not.toBeNaN();
  });
});
