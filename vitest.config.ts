import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Forks, so that --expose-gc reaches the workers: the GC backstop and heap tests need it.
    pool: 'forks',
    execArgv: ['--expose-gc'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Leak reports go through process warnings; tests assert on them, so keep stderr readable.
    silent: false,
  },
});
