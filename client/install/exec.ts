/**
 * Runs an installer command (dpkg, gem, docker, or the config's override)
 * without a shell; a non-zero exit becomes one line naming the command and
 * the last line it printed.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { AirlockError } from '../../manifests/errors.js';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** piped to the command's stdin */
  input?: Readable;
  /** what this run installs, for the error message */
  where: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export function runCommand(argv: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const [cmd, ...args] = argv;
    if (!cmd) return reject(new AirlockError('EUSAGE', `${opts.where}: empty installer command`));
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout = (stdout + c.toString()).slice(-64 * 1024)));
    child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-64 * 1024)));
    if (opts.input && child.stdin) {
      child.stdin.on('error', () => {}); // the command may exit before reading everything; its status says why
      opts.input.pipe(child.stdin);
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      const why = e.code === 'ENOENT' ? 'not found (install it or override it in the config "installers")' : e.message;
      reject(new AirlockError('EINTERNAL', `${opts.where}: installer "${cmd}" ${why}`, { command: argv }));
    });
    child.on('close', (code, signal) => {
      if (code === 0) return resolvePromise({ stdout, stderr });
      const last = (stderr.trim() || stdout.trim()).split('\n').slice(-1)[0] ?? '';
      reject(
        new AirlockError('EINTERNAL', `${opts.where}: \`${argv.slice(0, 3).join(' ')} …\` failed (${signal ?? `exit ${code}`}): ${last}`, {
          command: argv,
          code,
          stderr: stderr.slice(-4000),
        }),
      );
    });
  });
}

/** True when the command runs and exits 0 (e.g. `docker info`: an engine answers). */
export function commandSucceeds(argv: readonly string[], timeoutMs = 5000): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, { stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', () => {
      clearTimeout(timer);
      resolvePromise(false);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise(code === 0);
    });
  });
}
