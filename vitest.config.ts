import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Forks, so that --expose-gc reaches the workers: the GC backstop and heap tests need it.
    pool: 'forks',
    // --no-warnings: tests assert on the 'warning' events; printing every deliberate one to stderr
    // would bury real failures in the CI log.
    execArgv: ['--expose-gc', '--no-warnings'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
