/**
 * The one place test hooks come in from the environment. End-to-end tests
 * run the built CLIs as separate processes and SIGKILL them at known points;
 * they cannot hand such a process a function, so each CLI's main.ts calls
 * `testHooksFromEnv()` once at start-up and passes what it returns down as
 * ordinary injected hooks. No other module reads these variables.
 *
 *   AIRLOCK_TEST_RELOCATE_PAUSE=<point>      `airlock relocate` stops at that point (storage/relocate.ts)
 *   AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP=<n>   `airlock-node upgrade` stops hard once n install steps are done
 */

export interface CliTestHooks {
  relocatePause?: (point: string) => Promise<void>;
  afterInstallStep?: (finished: number) => void;
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
      // blocks the whole process, timers included: nothing moves on until the test kills it
      const sab = new Int32Array(new SharedArrayBuffer(4));
      for (;;) Atomics.wait(sab, 0, 0, 1000);
    };
  }
  return hooks;
}
