#!/usr/bin/env node
import { runProgram } from '../../storage/support/cli.js';
import { buildProgram } from './program.js';

await runProgram(buildProgram());
