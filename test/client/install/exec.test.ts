/** Installer commands run without a shell; a failure is one line naming the command and the last line it printed. */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { commandSucceeds, runCommand } from '../../../client/install/exec.js';
import { isAirlockError } from '../../../manifests/errors.js';
import { failure } from './hostile.js';

describe('runCommand', () => {
  it('returns what the command printed; arguments reach it as given, no shell between', async () => {
    const r = await runCommand(['printf', '%s|', 'a b', '$HOME', '*'], { where: 'debs/x.deb' });
    expect(r).toEqual({ stdout: 'a b|$HOME|*|', stderr: '' });
  });

  it('pipes `input` to its stdin, and passes env and cwd', async () => {
    const r = await runCommand(['sh', '-c', 'cat; printf " %s %s" "$AIRLOCK_X" "$(pwd)"'], {
      where: 'images/app',
      input: Readable.from([Buffer.from('from stdin')]),
      env: { PATH: process.env.PATH, AIRLOCK_X: 'x=1' },
      cwd: '/',
    });
    expect(r.stdout).toBe('from stdin x=1 /');
  });

  it('a non-zero exit is EINTERNAL naming the artifact, the command and its last line (stderr first)', async () => {
    const err = await failure(runCommand(['sh', '-c', 'echo progress; echo "first problem" >&2; echo "dpkg: error: bad thing" >&2; exit 3', 'x'], { where: 'debs/hello.deb' }));
    expect(isAirlockError(err, 'EINTERNAL'), String(err)).toBe(true);
    expect((err as Error).message).toBe('debs/hello.deb: `sh -c echo progress; echo "first problem" >&2; echo "dpkg: error: bad thing" >&2; exit 3 …` failed (exit 3): dpkg: error: bad thing');
    expect(err).toMatchObject({ details: { code: 3, stderr: 'first problem\ndpkg: error: bad thing\n' } });
  });

  it('with nothing on stderr the last stdout line is named; a signal is named instead of an exit code', async () => {
    const quietFail = await failure(runCommand(['sh', '-c', 'echo one; echo two; exit 1'], { where: 'gems/rack.gem' }));
    expect((quietFail as Error).message).toMatch(/failed \(exit 1\): two$/);
    const killed = await failure(runCommand(['sh', '-c', 'kill -TERM $$'], { where: 'gems/rack.gem' }));
    expect((killed as Error).message).toMatch(/failed \(SIGTERM\): $/);
  });

  it('a command that is not there says so, pointing at the config override', async () => {
    const err = await failure(runCommand(['airlock-no-such-installer', 'x'], { where: 'gems/rack.gem' }));
    expect(isAirlockError(err, 'EINTERNAL'), String(err)).toBe(true);
    expect((err as Error).message).toBe('gems/rack.gem: installer "airlock-no-such-installer" not found (install it or override it in the config "installers")');
  });

  it('an empty command is EUSAGE', async () => {
    expect(isAirlockError(await failure(runCommand([], { where: 'gems/rack.gem' })), 'EUSAGE')).toBe(true);
  });
});

describe('commandSucceeds', () => {
  it('true on exit 0; false on another exit, on a missing command, and on a timeout', async () => {
    expect(await commandSucceeds(['true'])).toBe(true);
    expect(await commandSucceeds(['false'])).toBe(false);
    expect(await commandSucceeds(['airlock-no-such-command'])).toBe(false);
    const t0 = Date.now();
    expect(await commandSucceeds(['sleep', '10'], 200)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
