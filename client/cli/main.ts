#!/usr/bin/env node
import { CommanderError } from 'commander';
import { usageError } from '../../storage/support/cli.js';
import { createOutput } from '../../storage/support/output.js';
import { buildProgram } from './program.js';

const program = buildProgram(process.argv.slice(2));
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
