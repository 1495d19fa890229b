#!/usr/bin/env node
import { runProgram } from '../../common/cli.js';
import { testHooksFromEnv } from '../../common/test-hooks.js';

// `airlock serve …` loads only the serve command: the full tree pulls in got,
// tar-stream, level and the stage code (about a second and 15 MiB of RSS) that
// a long-running server never uses. Everything else, help included, gets the full tree.
// The store's own commands and stage likewise load only themselves (the whole tree is
// ~15 MiB of the 150 MiB an import, an export or a stage may use).
const ALONE: Readonly<Record<string, string>> = {
  import: './commands/import.js',
  export: './commands/export.js',
  relocate: './commands/relocate.js',
  verify: './commands/verify.js',
  status: './commands/status.js',
  stage: './commands/stage.js',
};
const alone = ALONE[process.argv[2] ?? ''];
if (process.argv[2] === 'serve') {
  const [{ rootCommand }, { register }] = await Promise.all([import('./frame.js'), import('./commands/serve.js')]);
  const program = rootCommand();
  register(program);
  await runProgram(program);
} else if (alone) {
  const [{ rootCommand }, { register }] = await Promise.all([
    import('./frame.js'),
    import(alone) as Promise<{ register: (p: import('commander').Command, deps?: import('./frame.js').ProgramDeps) => void }>,
  ]);
  const program = rootCommand();
  register(program, { hooks: testHooksFromEnv() });
  await runProgram(program);
} else {
  const { buildProgram } = await import('./program.js');
  await runProgram(buildProgram({ hooks: testHooksFromEnv() }));
}
