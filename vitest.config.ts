import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e suites start real servers on fixed loopback ports: one file at a time there.
    fileParallelism: true,
    pool: 'forks',
  },
});
