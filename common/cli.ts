/**
 * The one place where a command's outcome becomes an exit status: every
 * action runs inside `runAction`, which prints the result or a one-line
 * error (never a stack trace for a user mistake) and sets the exit code from
 * the error's code (manifests/errors.ts).
 */
import { AirlockError, toAirlockError } from '../manifests/errors.js';
import { Command, CommanderError } from 'commander';
import { createOutput, type Output } from './output.js';

/** What an action may return: its exit status when that is not 0 (e.g. `status` of a release that is not ready). */
export type ActionResult = number | void;

export async function runAction(json: boolean, action: (out: Output) => Promise<ActionResult>): Promise<void> {
  const out = createOutput(json);
  try {
    const code = await action(out);
    process.exitCode = typeof code === 'number' ? code : 0;
  } catch (e) {
    const err = toAirlockError(e);
    out.failure(err);
    if (err.code === 'EINTERNAL' && process.env.AIRLOCK_DEBUG) process.stderr.write(`${String(err.details.stack)}\n`);
    process.exitCode = err.exitStatus;
  }
}

/** commander's usage errors (unknown option, missing argument) exit 2 with a one-line message. */
export function usageError(message: string): AirlockError {
  return new AirlockError('EUSAGE', message.replace(/^error:\s*/, '').trim());
}

/**
 * Runs a commander program as a process: help and version exit 0, commander's
 * own usage errors become one EUSAGE line and exit 2.
 */
export async function runProgram(program: Command, argv: string[] = process.argv): Promise<void> {
  // `airlock --help | head`: a reader that goes away is not an error worth a stack trace
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  // every command of the tree, not only the root: commander copies these settings into a
  // subcommand when it is made, so one set on the root afterwards never reaches `airlock stage`
  const quiet = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.configureOutput({ writeErr: () => {} });
    for (const sub of cmd.commands) quiet(sub);
  };
  quiet(program);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
      process.exitCode = 0;
      return;
    }
    const err = usageError(e.message.split('\n')[0]!);
    createOutput(argv.includes('--json')).failure(err);
    process.exitCode = err.exitStatus;
  }
}
