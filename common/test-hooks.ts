/**
 * The one place test hooks come in from the environment. End-to-end tests
 * run the built CLIs as separate processes and SIGKILL them at known points;
 * they cannot hand such a process a function, so each CLI's main.ts calls
 * `testHooksFromEnv()` once at start-up and passes what it returns down as
 * ordinary injected hooks. No other module reads these variables.
 *
 *   AIRLOCK_TEST_RELOCATE_PAUSE=<point>      `airlock relocate` stops at that point (storage/relocate.ts)
 *   AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP=<n>   `airlock-node upgrade` stops hard once n install steps are done
 *   AIRLOCK_NODE_TEST_PAUSE_AT_BYTES=<n>[:<ms>]  `airlock-node` stops (forever, or for ms) the first time a blob's
 *                                            partial holds n bytes and is not complete: a SIGKILL or a cache
 *                                            stopped meanwhile hits a known point mid-download
 */

export interface CliTestHooks {
  relocatePause?: (point: string) => Promise<void>;
  afterInstallStep?: (finished: number) => void;
  downloadBytes?: (bytes: number, size: number) => void;
}

/** Blocks the whole process, timers included, until `until` (or forever). */
function block(until = Infinity): void {
  const sab = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < until) Atomics.wait(sab, 0, 0, Math.min(1000, until - Date.now()));
}

export function testHooksFromEnv(env: NodeJS.ProcessEnv = process.env): CliTestHooks {
  const hooks: CliTestHooks = {};
  const point = env.AIRLOCK_TEST_RELOCATE_PAUSE;
  if (point) {
    hooks.relocatePause = async (at) => {
      if (at !== point) return;
      process.stderr.write(`airlock: relocate paused at ${at}\n`);
      await new Promise<never>(() => setInterval(() => {}, 1 << 30));
    };
  }
  const step = env.AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP;
  if (step !== undefined && /^\d+$/.test(step)) {
    hooks.afterInstallStep = (finished) => {
      if (finished !== Number(step)) return;
      process.stderr.write(`airlock-node: test pause after step ${finished}\n`);
      // nothing moves on until the test kills it
      block();
    };
  }
  const at = env.AIRLOCK_NODE_TEST_PAUSE_AT_BYTES;
  if (at && /^\d+(:\d+)?$/.test(at)) {
    const [bytes, ms] = at.split(':').map(Number) as [number, number | undefined];
    let paused = false;
    hooks.downloadBytes = (held, size) => {
      if (paused || held >= size || held < bytes) return;
      paused = true;
      process.stderr.write(`airlock-node: test pause at ${held} bytes\n`);
      // every counted byte is already written (progress fires after the write)
      block(ms === undefined ? Infinity : Date.now() + ms);
    };
  }
  return hooks;
}
