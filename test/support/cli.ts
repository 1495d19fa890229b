/** Running the built CLIs from e2e tests: paths, a clean environment, exit code + output. */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '..', '..');
export const AIRLOCK = join(REPO, 'dist', 'server', 'cli', 'main.js');
export const NODE_CLI = join(REPO, 'dist', 'client', 'cli', 'main.js');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** This process's environment without proxy variables or test hooks, plus `extra`. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|no|all)_proxy$/i.test(k)) delete env[k];
  delete env.AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP;
  delete env.AIRLOCK_NODE_TEST_PAUSE_AT_BYTES;
  return { ...env, ...extra };
}

/** Runs a command to its end (2 min at most); never rejects. */
export function runCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Run> {
  return new Promise((done) => {
    execFile(cmd, args, { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

/** Runs one of the built CLIs (AIRLOCK or NODE_CLI) with node. */
export function runCli(cli: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Promise<Run> {
  return runCmd(process.execPath, [cli, ...args], env);
}
