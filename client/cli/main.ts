#!/usr/bin/env node
import { runProgram } from '../../common/cli.js';
import { setProgramName } from '../../common/output.js';
import { testHooksFromEnv } from '../../common/test-hooks.js';
import { buildProgram } from './program.js';

setProgramName('airlock-node');

await runProgram(buildProgram(process.argv.slice(2), testHooksFromEnv()));
