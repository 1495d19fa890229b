import { describe, expect, it } from 'vitest';
import { mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { appendJournal, readJournal } from '../../client/journal.js';
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
