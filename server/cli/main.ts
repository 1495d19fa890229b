#!/usr/bin/env node
import { runProgram } from '../../common/cli.js';
import { testHooksFromEnv } from '../../common/test-hooks.js';

// `airlock serve …` loads only the serve command: the full tree pulls in got,
// tar-stream, level and the stage code (about a second and 15 MiB of RSS) that
// a long-running server never uses. Everything else, help included, gets the full tree.
if (process.argv[2] === 'serve') {
  const [{ rootCommand }, { register }] = await Promise.all([import('./frame.js'), import('./commands/serve.js')]);
  const program = rootCommand();
  register(program);
  await runProgram(program);
} else {
  const { buildProgram } = await import('./program.js');
  await runProgram(buildProgram({ hooks: testHooksFromEnv() }));
}
