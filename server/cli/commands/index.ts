/** Every `airlock` command, in the order `--help` lists them. */
import type { Command } from 'commander';
import type { ProgramDeps } from '../frame.js';

import { register as stage } from './stage.js';
import { register as serve } from './serve.js';
import { register as exportCmd } from './export.js';
import { register as importCmd } from './import.js';
import { register as relocateCmd } from './relocate.js';
import { register as gcCmd } from './gc.js';
import { register as statusCmd } from './status.js';
import { register as verifyCmd } from './verify.js';
import { register as keygenCmd } from './keygen.js';
import { register as rootCmd } from './root.js';
import { register as manifestCmd } from './manifest.js';
import { register as manifestBuild } from './manifest-build.js';

export type RegisterCommand = (program: Command, deps: ProgramDeps) => void;

/** Cache node work first (stage → status → serve → verify), then air gap and disk, then publisher tools. */
export const COMMANDS: RegisterCommand[] = [
  stage,
  statusCmd,
  serve,
  verifyCmd,
  exportCmd,
  importCmd,
  relocateCmd,
  gcCmd,
  keygenCmd,
  rootCmd,
  manifestCmd,
  manifestBuild,
];
