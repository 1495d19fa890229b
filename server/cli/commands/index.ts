/** Every `airlock` command, in the order `--help` lists them. */
import type { Command } from 'commander';

import { register as stage } from './stage.js';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: RegisterCommand[] = [];
COMMANDS.push(stage);
