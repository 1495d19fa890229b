/**
 * The `airlock` command tree. Each command lives in its own file under
 * `commands/` and registers itself here; common flags are added by
 * `withCommon` so every command reads config the same way (frame.ts).
 */
import type { Command } from 'commander';
import { COMMANDS } from './commands/index.js';
import { rootCommand, type ProgramDeps } from './frame.js';

/** One line per command in `airlock --help`; each command's own --help says the rest. */
const SUMMARIES: Readonly<Record<string, string>> = {
  stage: 'pull everything a signed release lists into the cache, through the proxy',
  status: 'is a release ready? lists exactly what is missing (exit 0 only when ready)',
  serve: 'serve the cache over the LAN: blobs, files, OCI registry, apt, proxy mode',
  verify: 're-hash blobs; move corrupt ones to quarantine/ and report them',
  export: 'write a release as a bundle (tar, optionally in volumes) for an air gap',
  import: 'add a bundle to this cache, verifying every byte against the signed manifest',
  relocate: 'move the cache to another disk safely, then point the config at it',
  gc: 'delete blobs no kept release needs, old partial downloads and quarantine',
  keygen: 'make an ed25519 signing key pair (publisher)',
  root: 'make and rotate the trust root.json (publisher)',
  manifest: 'build, sign and verify release manifests (publisher)',
};

export function buildProgram(deps: ProgramDeps = {}): Command {
  const program = rootCommand();
  for (const register of COMMANDS) register(program, deps);
  for (const cmd of program.commands) {
    const line = SUMMARIES[cmd.name()];
    if (line) cmd.summary(line);
  }
  return program;
}
