import { describe, expect, it } from 'vitest';
import { testHooksFromEnv } from '../../common/test-hooks.js';

// The hooks that match stop the process for good (a test SIGKILLs it there), so only the
// ones that let it go on are run here; the stopping ones are run by the CLIs' e2e tests.
describe('testHooksFromEnv', () => {
  it('gives no hook when no variable is set', () => {
    expect(testHooksFromEnv({})).toEqual({});
  });

  it('a relocate pause point lets every other point pass', async () => {
    const { relocatePause } = testHooksFromEnv({ AIRLOCK_TEST_RELOCATE_PAUSE: 'switched' });
    for (const other of ['copying', 'verified', 'removing']) await expect(relocatePause!(other)).resolves.toBeUndefined();
  });

  it('an install-step pause lets every other count pass; a value that is not a count gives no hook', () => {
    const { afterInstallStep } = testHooksFromEnv({ AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP: '2' });
    expect(() => {
      afterInstallStep!(1);
      afterInstallStep!(3);
    }).not.toThrow();
    expect(testHooksFromEnv({ AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP: '' }).afterInstallStep).toBeUndefined();
    expect(testHooksFromEnv({ AIRLOCK_NODE_TEST_PAUSE_AFTER_STEP: 'two' }).afterInstallStep).toBeUndefined();
  });
});
