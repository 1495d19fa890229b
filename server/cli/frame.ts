/**
 * What every `airlock` command is built from: the root command, the common
 * flags and the action wrapper. Apart from program.ts (which registers every
 * command) so that one command can be loaded alone: `airlock serve` runs for
 * months and should not carry the other commands' modules (main.ts). Commands
 * import from here, never from program.ts, which imports them.
 */
import { Command, Option } from 'commander';
import { loadConfig, type AirlockConfig, type CommonFlags } from '../config.js';
import { runAction, type ActionResult } from '../../common/cli.js';
import type { Output } from '../../common/output.js';
import type { CliTestHooks } from '../../common/test-hooks.js';

export interface CommandContext {
  config: AirlockConfig;
  out: Output;
}

/** What main.ts hands the commands when it builds them: for now only the test hooks it read at start-up. */
export interface ProgramDeps {
  hooks?: CliTestHooks;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** A shared flag a command may take; each command lists only those it reads. */
export type CommonFlag = 'config' | 'cache-dir' | 'trust' | 'proxy' | 'ca-file' | 'insecure-registry' | 'accept-expired-until';

/** The flags that reach an upstream: stage, manifest build, serve (POST /stage). */
export const UPSTREAM_FLAGS: readonly CommonFlag[] = ['proxy', 'ca-file', 'insecure-registry'];

const COMMON_OPTIONS: Record<CommonFlag, () => Option> = {
  config: () => new Option('--config <file>', 'config file (default ./airlock.yml when present)'),
  'cache-dir': () => new Option('--cache-dir <dir>', 'cache directory (default ./airlock-cache or cache_dir in the config)'),
  trust: () => new Option('--trust <root.json>', 'trusted root (got out of band, never from the cache)'),
  proxy: () => new Option('--proxy <url>', 'upstream proxy (default: http_proxy/https_proxy/no_proxy from the environment)'),
  'ca-file': () => new Option('--ca-file <pem>', 'extra CA certificates for upstream TLS'),
  'insecure-registry': () =>
    new Option('--insecure-registry <host[:port]>', 'speak plain http to this registry (repeatable)').argParser(collect),
  'accept-expired-until': () =>
    new Option('--accept-expired-until <date>', 'accept a manifest that expired, until this date (logged; skips no other check)'),
};

/**
 * Adds the shared flags this command reads (docs/cli.md "Common flags"), in
 * one order, and `--json`, which every command takes. `--config` comes with
 * any of them; a command given none (`[]`) reads no config file. Without
 * `uses`, every shared flag.
 */
export function withCommon(cmd: Command, uses?: readonly CommonFlag[]): Command {
  const order = Object.keys(COMMON_OPTIONS) as CommonFlag[];
  const wanted = new Set<CommonFlag>(uses === undefined ? order : uses.length > 0 ? ['config', ...uses] : []);
  for (const name of order) if (wanted.has(name)) cmd.addOption(COMMON_OPTIONS[name]());
  return cmd.option('--json', 'machine-readable output: one JSON object per line');
}

/**
 * Wraps a command action: parses config once, runs the action, maps errors
 * to exit codes. `fn` gets the positional args and the parsed options.
 */
export function action<A extends unknown[], O extends CommonFlags>(
  fn: (ctx: CommandContext, opts: O, ...args: A) => Promise<ActionResult>,
): (...raw: unknown[]) => Promise<void> {
  return async (...raw: unknown[]) => {
    const cmd = raw[raw.length - 1] as Command;
    const opts = cmd.opts<O>();
    const args = raw.slice(0, raw.length - 2) as A;
    await runAction(Boolean(opts.json), async (out) => {
      // a command without --config (keygen, root, manifest sign) reads no config file
      const readsConfig = cmd.options.some((o) => o.long === '--config');
      const config = loadConfig(opts, process.cwd(), { file: readsConfig });
      return fn({ config, out }, opts, ...args);
    });
  };
}

/** The `airlock` root command, without subcommands. */
export function rootCommand(): Command {
  return new Command('airlock')
    .description(
      'Content-addressed artifact cache and mirror for in-place cluster upgrades: stages a ' +
        'signed release from upstream through the site proxy, verifies every byte, and serves ' +
        'it to the nodes over the LAN. Typical order: stage, status, serve; on the nodes, ' +
        'airlock-node upgrade --cache URL.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      '\nExit status: 0 ok, 1 failure, 2 usage, 3 verification failed, 4 preflight failed, 5 network (re-run resumes).',
    );
}
