/**
 * What test mode (custodian/vitest) costs the tests it checks. No target: this is for docs/testing.md#cost.
 *
 * - A request-like task (withScope, a tracked resource, five awaits, release) with test mode off,
 *   inside a test's run (the second AsyncLocalStorage and the origin probe on), and with the
 *   optional handle check on too (an async_hooks init hook that Node calls for every promise).
 * - One expectNoLeaks() of a function that leaves nothing, against calling the function.
 * - Whole vitest runs of 300 trivial tests, with and without the setup file (full run only).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expectNoLeaks } from '../adapters/vitest/block.js';
import { useHandleTracking } from '../adapters/vitest/handles.js';
import { acquiringRun, Run, runs } from '../adapters/vitest/runs.js';
import { withScope } from '../src/index.js';
import { origins } from '../src/report/origin.js';
import { compareRow, median, measure, type MeasureOptions, type Row } from './harness.js';

const sink = { count: 0 };

async function task(): Promise<void> {
  await withScope(async (scope) => {
    const lease = scope.track({ id: 1 }, { release: (r) => void (sink.count += r.id), kind: 'bench connection' });
    for (let i = 0; i < 5; i++) await Promise.resolve(i);
    await lease.release();
  });
}

async function tasks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await task();
}

let stopTracking: (() => void) | undefined;
const mode = (probe: boolean, handles: boolean) => () => {
  origins.probe = probe ? acquiringRun : undefined;
  // Off means the process never entered a test run: the second AsyncLocalStorage is not enabled.
  if (!probe) runs.disable();
  if (handles && stopTracking === undefined) stopTracking = useHandleTracking();
  if (!handles && stopTracking !== undefined) {
    stopTracking();
    stopTracking = undefined;
  }
};
const inRun = (n: number) => runs.run(new Run('test', 'bench', undefined), () => tasks(n));

/** Wall time of `vitest run` on `count` trivial tests, with or without the setup file: [with, without] medians in ms. */
function vitestRuns(count: number, rounds: number): { with: number; without: number } {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  // Inside the package, so that the test file resolves `custodian` as the package itself.
  const dir = mkdtempSync(join(root, '.bench-'));
  try {
    const body = Array.from(
      { length: count },
      (_, i) => `test('t${i}', async () => { await using l = track({}, { release: () => {} }); await Promise.resolve(l); });`,
    ).join('\n');
    writeFileSync(join(dir, 'trivial.test.ts'), `import { test } from 'vitest';\nimport { track } from 'custodian';\n${body}\n`);
    const config = (setup: boolean) =>
      `export default { test: { root: ${JSON.stringify(dir)}, include: ['*.test.ts'], pool: 'forks', ${setup ? "setupFiles: ['custodian/vitest/setup']," : ''} } };\n`;
    writeFileSync(join(dir, 'with.config.mjs'), config(true));
    writeFileSync(join(dir, 'without.config.mjs'), config(false));
    const time = (name: string) => {
      const t0 = performance.now();
      execFileSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'run', '--config', join(dir, `${name}.config.mjs`)], {
        cwd: root,
        stdio: 'ignore',
      });
      return performance.now() - t0;
    };
    const withSetup: number[] = [];
    const without: number[] = [];
    for (let i = 0; i < rounds; i++) {
      withSetup.push(time('with'));
      without.push(time('without'));
    }
    return { with: median(withSetup), without: median(without) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function testModeBench(options: MeasureOptions, full: boolean, note: (line: string) => void): Promise<Row[]> {
  const g = 'test mode';
  const [off, run, handles] = await measure(
    [
      { name: 'task, test mode off', setup: mode(false, false), run: tasks },
      { name: 'task in a test run', setup: mode(true, false), run: inRun },
      { name: 'task in a test run, handle check on', setup: mode(true, true), run: inRun },
    ],
    options,
  );
  mode(false, false)();
  const [plain, checked] = await measure(
    [
      {
        name: 'call an async function',
        run: async (n) => {
          for (let i = 0; i < n; i++) await (async () => {})();
        },
      },
      {
        name: 'expectNoLeaks(fn) that leaves nothing',
        run: async (n) => {
          for (let i = 0; i < n; i++) await expectNoLeaks(async () => {});
        },
      },
    ],
    options,
  );
  mode(false, false)();
  const rows = [
    compareRow(g, 'task (withScope, track, 5 awaits) inside a test run', run!, off!, undefined, 'second AsyncLocalStorage + origin probe'),
    compareRow(g, 'same, with the handle check on', handles!, off!, undefined, 'async_hooks init hook: called for every promise'),
    compareRow(g, 'expectNoLeaks(fn) of a clean fn', checked!, plain!, undefined, 'a run, a walk of the registry, no wait'),
  ];
  if (full) {
    const count = 300;
    const runsOf = vitestRuns(count, 5);
    note(
      `vitest run of ${count} trivial tests: ${Math.round(runsOf.with)} ms with custodian/vitest/setup, ${Math.round(runsOf.without)} ms without (median of 5 each): ${((runsOf.with - runsOf.without) / count).toFixed(2)} ms per test`,
    );
  }
  return rows;
}
