#!/usr/bin/env node
import { buildProgram } from './program.js';
import { usageError } from '../../storage/support/cli.js';
import { createOutput } from '../../storage/support/output.js';
import { CommanderError } from 'commander';

const program = buildProgram();
program.exitOverride();
program.configureOutput({ writeErr: () => {} });
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') {
      process.exitCode = 0;
    } else {
      createOutput(process.argv.includes('--json')).failure(usageError(e.message));
      process.exitCode = 2;
    }
  } else {
    throw e;
  }
}
