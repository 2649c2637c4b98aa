/**
 * The per-test and per-file checks, registered by the setup file. `aroundEach` (Vitest 4.1) wraps
 * beforeEach, the test and afterEach in the test's run, so everything they start is charged to
 * the test, also under `test.concurrent`; `aroundAll` wraps the file, for what its hooks leave.
 */
import * as vitest from 'vitest';
import { checkRun, LeakCheckError } from './check.js';
import { enableTestMode } from './mode.js';
import { Run, runs, setActiveFile } from './runs.js';
import { settings } from './settings.js';

/** Registers the checks on the file being collected (setup files run once per test file). */
export function installLeakCheck(): void {
  const { aroundAll, aroundEach } = vitest as Partial<typeof vitest>;
  if (typeof aroundEach !== 'function' || typeof aroundAll !== 'function') {
    throw new Error(
      'custodian/vitest/setup needs Vitest 4.1 or later (it wraps each test with aroundEach); this Vitest has no aroundEach. Upgrade vitest, or call expectNoLeaks() in the tests to check.',
    );
  }
  enableTestMode();

  // Vitest reads these callbacks' parameter lists to resolve fixtures: a second parameter must be
  // destructured, so the file's path comes from expect's state rather than the suite argument.
  aroundAll(async (runSuite) => {
    const file = new Run('file', vitest.expect.getState().testPath ?? 'this file', undefined);
    setActiveFile(file);
    try {
      await runs.run(file, runSuite);
      const { leaks, waitedMs } = await checkRun(file, { waitMs: settings.waitMs, extra: undefined, handles: false });
      if (leaks.length > 0) throw new LeakCheckError('file', leaks, waitedMs);
    } finally {
      file.state = 'done';
      setActiveFile(undefined);
    }
  });

  aroundEach(async (runTest, { task }) => {
    const file = runs.getStore();
    const run = new Run('test', task.fullTestName ?? task.name, file);
    file?.tests.add(run);
    try {
      await runs.run(run, runTest);
      // A test that failed on its own: what it left is most likely the failure's doing (fix that
      // first). A skipped one (ctx.skip()) and a test.fails one are not checked either: vitest
      // would drop or invert the check's error.
      const state = task.result?.state;
      if (state === 'fail' || state === 'skip' || task.fails === true) run.failed = true;
      const { leaks, waitedMs } = await checkRun(run, { waitMs: settings.waitMs, extra: undefined, handles: settings.handles });
      if (leaks.length > 0) throw new LeakCheckError('test', leaks, waitedMs);
    } finally {
      run.state = 'done';
      file?.tests.delete(run);
    }
  });
}
