import { describe, expect, it } from 'vitest';
import { lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envelopeFile, journalFile, readInstalled, statePaths, writeStateFile, writeInstalled, writtenFile } from '../../client/state.js';
import { isAirlockError } from '../../manifests/errors.js';
import { sandbox } from './install/hostile.js';

function stateInRoot() {
  const s = sandbox('state');
  const state = statePaths(join(s.root, 'var', 'lib', 'airlock-node'));
  mkdirSync(state.dir, { recursive: true });
  return { ...s, state };
}

const thrown = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return new Error('did not throw');
};

describe('node state files never follow a link inside the state dir', () => {
  for (const [label, folder, file] of [
    ['envelopes/', 'envelopes', (s: ReturnType<typeof statePaths>) => envelopeFile(s, '1.0.0')],
    ['written/', 'written', (s: ReturnType<typeof statePaths>) => writtenFile(s, '/opt/app')],
    ['trust/', 'trust', (s: ReturnType<typeof statePaths>) => s.trust],
  ] as Array<[string, keyof ReturnType<typeof statePaths>, (s: ReturnType<typeof statePaths>) => string]>) {
    it(`refuses with EPATH when STATE/${label} is a link leading out`, () => {
      const { state, outside } = stateInRoot();
      symlinkSync('../../../../escaped', join(state.dir, folder));
      const err = thrown(() => writeStateFile(file(state), '{}\n'));
      expect(outside()).toEqual([]);
      expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
      expect((err as Error).message).not.toMatch(/\n/);
    });
  }

  it('replaces a link planted at installed.json instead of writing through it, and refuses to read one', () => {
    const { state, escaped, outside } = stateInRoot();
    writeFileSync(join(escaped, 'installed.json'), '{"release":"theirs"}');
    symlinkSync(join(escaped, 'installed.json'), state.installed);
    const err = thrown(() => readInstalled(state));
    expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
    writeInstalled(state, { product: 'p', release: '1.0.0', serial: 1, digest: 'd', installedAt: 'now' });
    expect(lstatSync(state.installed).isFile()).toBe(true);
    expect(readFileSync(join(escaped, 'installed.json'), 'utf8')).toBe('{"release":"theirs"}');
    expect(outside()).toEqual(['installed.json']);
  });

  it('still accepts a state dir that is itself a link (an operator may put it on another disk)', () => {
    const { dir, root } = sandbox('state');
    mkdirSync(join(dir, 'disk'));
    symlinkSync(join(dir, 'disk'), join(root, 'state'));
    const state = statePaths(join(root, 'state'));
    writeStateFile(envelopeFile(state, '1.0.0'), '{}\n');
    expect(readFileSync(join(dir, 'disk', 'envelopes', '1.0.0.json'), 'utf8')).toBe('{}\n');
  });
});

describe("release names become state file names by the cache's rule", () => {
  const state = statePaths('/var/lib/airlock-node');

  it.each(['../x', 'a/b', '.hidden', '', 'a..b', 'x\0y'])('refuses %j with EPATH', (bad) => {
    for (const f of [envelopeFile, journalFile]) {
      const err = thrown(() => f(state, bad));
      expect(isAirlockError(err, 'EPATH'), String(err)).toBe(true);
    }
  });

  it('accepts what the cache stores', () => {
    expect(envelopeFile(state, '1.0.0+build~rc-1_x')).toBe('/var/lib/airlock-node/envelopes/1.0.0+build~rc-1_x.json');
    expect(journalFile(state, '1.0.0')).toBe('/var/lib/airlock-node/journal/1.0.0.jsonl');
  });
});
