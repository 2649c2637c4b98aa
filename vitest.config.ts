import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Forks, so that --expose-gc reaches the workers: the GC backstop and heap tests need it.
    pool: 'forks',
    // --no-warnings: tests assert on the 'warning' events; printing every deliberate one to stderr
    // would bury real failures in the CI log.
    execArgv: ['--expose-gc', '--no-warnings'],
    // The project's own suite runs with the leak check on (the source of custodian/vitest/setup, so
    // that it shares its modules with the tests, which import ../src).
    setupFiles: ['./adapters/vitest/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
