import { describe, expect, it } from 'vitest';
import { lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { envelopeFile, journalFile, readAccepted, readInstalled, statePaths, writeAccepted, writeStateFile, writeInstalled, writtenFile } from '../../client/state.js';
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

describe('accepted serials and installed release', () => {
  it('nothing accepted or installed yet reads as empty', () => {
    const { state } = stateInRoot();
    expect(readAccepted(state)).toEqual({});
    expect(readInstalled(state)).toBeNull();
  });

  it('writeAccepted keeps one entry per product and never lowers a serial', () => {
    const { state } = stateInRoot();
    writeAccepted(state, { product: 'stackato', serial: 5, digest: 'a'.repeat(64) });
    writeAccepted(state, { product: 'other', serial: 1, digest: 'b'.repeat(64) });
    writeAccepted(state, { product: 'stackato', serial: 4, digest: 'c'.repeat(64) });
    expect(readAccepted(state)).toEqual({
      stackato: { product: 'stackato', serial: 5, digest: 'a'.repeat(64) },
      other: { product: 'other', serial: 1, digest: 'b'.repeat(64) },
    });
    writeAccepted(state, { product: 'stackato', serial: 6, digest: 'd'.repeat(64) });
    expect(readAccepted(state).stackato).toEqual({ product: 'stackato', serial: 6, digest: 'd'.repeat(64) });
  });

  it('installed.json round-trips', () => {
    const { state } = stateInRoot();
    const r = { product: 'stackato', release: '3.6.2', serial: 17, digest: 'e'.repeat(64), installedAt: '2026-03-01T00:00:00.000Z' };
    writeInstalled(state, r);
    expect(readInstalled(state)).toEqual(r);
  });

  it('a state file that is not JSON is EINTERNAL naming it, never silently empty', () => {
    const { state } = stateInRoot();
    writeFileSync(state.accepted, '{"stackato": {"serial": 5');
    const err = thrown(() => readAccepted(state));
    expect(isAirlockError(err, 'EINTERNAL'), String(err)).toBe(true);
    expect((err as Error).message).toContain(state.accepted);
  });

  it('written/ names a record per install target', () => {
    const state = statePaths('/var/lib/airlock-node');
    expect(writtenFile(state, '/opt/a')).toMatch(/^\/var\/lib\/airlock-node\/written\/[0-9a-f]{64}\.json$/);
    expect(writtenFile(state, '/opt/a')).toBe(writtenFile(state, '/opt/a'));
    expect(writtenFile(state, '/opt/a')).not.toBe(writtenFile(state, '/opt/b'));
  });
});
