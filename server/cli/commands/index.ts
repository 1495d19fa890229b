/** Every `airlock` command, in the order `--help` lists them. */
import type { Command } from 'commander';

import { register as stage } from './stage.js';
import { register as serve } from './serve.js';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: RegisterCommand[] = [];
COMMANDS.push(stage);
COMMANDS.push(serve);
