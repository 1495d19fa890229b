/**
 * The world's servers are our own children, in their own process groups,
 * logging to files. PID 1 on these machines reaps orphans late, so we never
 * orphan them: stop() signals the group and waits for the child's exit event.
 * If the test process dies first, an exit hook kills whatever is left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';

export interface Server {
  name: string;
  child: ChildProcess;
  logPath: string;
  /** why it ended (null while it runs) */
  exited(): string | null;
  /** last lines of its log, for error messages */
  tail(): string;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of running) {
      try { if (c.pid) process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });
}

export function startServer(name: string, cmd: string, args: string[], logPath: string, opts: { env?: NodeJS.ProcessEnv; stopSignal?: NodeJS.Signals } = {}): Server {
  hookExit();
  const fd = openSync(logPath, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: opts.env ?? process.env });
  closeSync(fd);
  running.add(child);
  let ended: string | null = null;
  const done = new Promise<void>((resolve) => {
    const finish = (why: string) => { if (ended === null) ended = why; running.delete(child); resolve(); };
    child.once('exit', (code, sig) => finish(`${name} exited (${sig ?? `code ${code}`})`));
    child.once('error', (e) => finish(`${name} could not start: ${e.message}`));
  });
  const tail = () => {
    try { return readFileSync(logPath, 'utf8').trim().split('\n').slice(-5).join(' | '); } catch { return ''; }
  };
  return {
    name, child, logPath, tail,
    exited: () => (ended === null ? null : `${ended}: ${tail()}`),
    async stop(signal = opts.stopSignal ?? 'SIGTERM', graceMs = 5000) {
      if (ended === null && child.pid) {
        try { process.kill(-child.pid, signal); } catch { /* already gone */ }
        const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
        await done;
        clearTimeout(timer);
        // the group may hold workers (nginx) that outlive the leader briefly
        try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      }
      await done;
    },
  };
}
