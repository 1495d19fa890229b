/**
 * The `airlock` command tree. Each command lives in its own file under
 * `commands/` and registers itself here; common flags are added by
 * `withCommon` so every command reads config the same way (frame.ts).
 */
import type { Command } from 'commander';
import { COMMANDS } from './commands/index.js';
import { rootCommand } from './frame.js';

export { action, withCommon, type CommandContext } from './frame.js';

export function buildProgram(): Command {
  const program = rootCommand();
  for (const register of COMMANDS) register(program);
  return program;
}
