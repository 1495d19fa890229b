/** `airlock manifest`: the parent of build (manifest-build.ts), sign and verify (manifest.ts), made once whoever registers first. */
import type { Command } from 'commander';

export function manifestGroup(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'manifest') ??
    program
      .command('manifest')
      .summary('build, sign and verify release manifests (publisher)')
      .description('Publisher tools for the signed release manifest (a DSSE envelope; docs/manifest.md has the format).')
  );
}
