#!/usr/bin/env node
import { runProgram } from '../../storage/support/cli.js';
import { setProgramName } from '../../storage/support/output.js';
import { testHooksFromEnv } from '../../storage/support/test-hooks.js';
import { buildProgram } from './program.js';

setProgramName('airlock-node');

await runProgram(buildProgram(process.argv.slice(2), testHooksFromEnv()));
