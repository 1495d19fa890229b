import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Files run in parallel: every suite starts its servers on free loopback ports picked at run time.
    fileParallelism: true,
    // forks, not threads: suites mount tmpfs, make network namespaces and SIGKILL children.
    pool: 'forks',
  },
});
