/**
 * The CLI contract of both programs, through the built binaries: a usage
 * mistake on any subcommand is exit 2, `EUSAGE`, one line (one JSON object
 * under --json), never commander's plain text; each --help lists only the
 * shared flags that command reads.
 */
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram as buildAirlock } from '../../server/cli/program.js';
import { buildProgram as buildNode } from '../../client/cli/program.js';
import { AIRLOCK, NODE_CLI, runCli } from '../support/cli.js';

/** every leaf command as its argv prefix: ['stage'], ['manifest', 'sign'], … */
function leaves(cmd: Command, prefix: string[] = []): string[][] {
  if (cmd.commands.length === 0) return [prefix];
  return cmd.commands.flatMap((c) => leaves(c, [...prefix, c.name()]));
}

const programs = [
  { name: 'airlock', cli: AIRLOCK, commands: leaves(buildAirlock()) },
  { name: 'airlock-node', cli: NODE_CLI, commands: leaves(buildNode([])) },
];

describe('usage errors on every subcommand', () => {
  for (const p of programs) {
    it(`${p.name}: an unknown option is exit 2, one EUSAGE line, one JSON object under --json`, async () => {
      expect(p.commands.length).toBeGreaterThan(1);
      for (const argv of p.commands) {
        const plain = await runCli(p.cli, [...argv, '--no-such-flag']);
        expect(plain.code, `${argv.join(' ')}: ${plain.stderr}`).toBe(2);
        // commander reports a missing required option before an unknown one; either is a usage line
        expect(plain.stderr).toMatch(new RegExp(`^${p.name}: EUSAGE: (unknown option '--no-such-flag'|required option .*|missing required argument .*)\\n$`));
        expect(plain.stdout).toBe('');
        const json = await runCli(p.cli, [...argv, '--no-such-flag', '--json']);
        expect(json.code, argv.join(' ')).toBe(2);
        const lines = json.stdout.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(JSON.parse(lines[0]!)).toMatchObject({ ok: false, error: { code: 'EUSAGE' } });
      }
    });
  }

  it('a missing argument or required option is the same: exit 2, EUSAGE, one line', async () => {
    for (const argv of [['stage'], ['export', '3.6.2'], ['manifest', 'sign', 'p.json'], ['root', 'init'], ['import']]) {
      const r = await runCli(AIRLOCK, argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^airlock: EUSAGE: (missing required argument|required option) .*\n$/);
      const j = await runCli(AIRLOCK, [...argv, '--json']);
      expect(j.code).toBe(2);
      expect(JSON.parse(j.stdout).error.code).toBe('EUSAGE');
    }
    const extra = await runCli(AIRLOCK, ['status', 'a', 'b']);
    expect(extra.code).toBe(2);
    expect(extra.stderr.trim().split('\n')).toHaveLength(1);
    const unknownCommand = await runCli(NODE_CLI, ['frobnicate', '--json']);
    expect(unknownCommand.code).toBe(2);
    expect(JSON.parse(unknownCommand.stdout).error.code).toBe('EUSAGE');
  });

  it('a missing trust file is EUSAGE in both programs', async () => {
    const a = await runCli(AIRLOCK, ['manifest', 'verify', 'e.json', '--trust', '/nonexistent/root.json', '--json']);
    expect(a.code).toBe(2);
    expect(JSON.parse(a.stdout.trim().split('\n').pop()!).error.code).toBe('EUSAGE');
    const n = await runCli(NODE_CLI, ['upgrade', '--cache', 'http://127.0.0.1:9', '--state-dir', '/nonexistent/state', '--trust', '/nonexistent/root.json', '--json']);
    expect(n.code).toBe(2);
    expect(JSON.parse(n.stdout.trim().split('\n').pop()!).error).toMatchObject({ code: 'EUSAGE', message: expect.stringContaining('/nonexistent/root.json') });
  });
});

describe('--help lists only the flags a command reads', () => {
  const help = async (...argv: string[]): Promise<string> => {
    const r = await runCli(AIRLOCK, [...argv, '--help']);
    expect(r.code).toBe(0);
    return r.stdout;
  };
  const flags = (text: string): string[] => [...text.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]!);

  it('status, gc and verify read the cache only; keygen and manifest sign read no config', async () => {
    for (const cmd of ['status', 'verify', 'gc']) {
      const f = flags(await help(cmd));
      expect(f, cmd).toEqual(expect.arrayContaining(['--config', '--cache-dir', '--json']));
      for (const no of ['--trust', '--proxy', '--ca-file', '--insecure-registry', '--accept-expired-until']) expect(f, `${cmd} ${no}`).not.toContain(no);
    }
    // relocate also checks the release records it reads from a bucket against --trust
    const relocate = flags(await help('relocate'));
    expect(relocate).toEqual(expect.arrayContaining(['--config', '--cache-dir', '--trust', '--json']));
    for (const no of ['--proxy', '--ca-file', '--insecure-registry', '--accept-expired-until']) expect(relocate, `relocate ${no}`).not.toContain(no);
    for (const argv of [['keygen'], ['manifest', 'sign'], ['root', 'init']]) {
      const f = flags(await help(...argv));
      expect(f, argv.join(' ')).not.toContain('--config');
      expect(f).not.toContain('--cache-dir');
      expect(f).toContain('--json');
    }
  });

  it('stage and manifest build take the upstream flags; verify takes the trust ones', async () => {
    const stage = flags(await help('stage'));
    expect(stage).toEqual(expect.arrayContaining(['--cache-dir', '--trust', '--proxy', '--ca-file', '--insecure-registry', '--accept-expired-until']));
    const build = flags(await help('manifest', 'build'));
    expect(build).toEqual(expect.arrayContaining(['--proxy', '--ca-file', '--insecure-registry']));
    expect(build).not.toContain('--cache-dir');
    expect(build).not.toContain('--trust');
    const verify = flags(await help('manifest', 'verify'));
    expect(verify).toEqual(expect.arrayContaining(['--trust', '--accept-expired-until']));
    expect(verify).not.toContain('--proxy');
  });

  it('airlock-node upgrade takes --ca-file for a cache over https; status does not', async () => {
    const upgrade = await runCli(NODE_CLI, ['upgrade', '--help']);
    expect(flags(upgrade.stdout)).toContain('--ca-file');
    const status = await runCli(NODE_CLI, ['status', '--help']);
    expect(flags(status.stdout)).not.toContain('--ca-file');
  });
});
