/**
 * expectNoLeaks(): the check for one function, inside a test or anywhere else.
 */
import { checkRun, LeakCheckError, type CheckResult } from './check.js';
import { useHandleTracking } from './handles.js';
import { enableTestMode } from './mode.js';
import { currentRun, Run, runs } from './runs.js';
import { checkOptions, settings, type LeakCheckOptions } from './settings.js';

/**
 * Runs `fn` and the leak check on what it acquired: resolves with what `fn` returns when it left
 * nothing behind (after waiting up to `waitMs` for stragglers), rejects with a `LeakCheckError`
 * listing each leftover otherwise, and rejects with `fn`'s own error when `fn` fails. Works with
 * or without the setup file, and in concurrent tests: only what `fn`'s async context acquired counts.
 *
 * @example
 * await expectNoLeaks(() => handler(request));
 */
export async function expectNoLeaks<R>(fn: () => R, options?: LeakCheckOptions): Promise<Awaited<R>> {
  const { result, check } = await runChecked('expectNoLeaks()', fn, options);
  if (check.leaks.length > 0) throw new LeakCheckError('function', check.leaks, check.waitedMs);
  return result;
}

/** @internal Runs `fn` as a block and checks it; `fn`'s error propagates (and what it left is not checked). */
export async function runChecked<R>(
  where: string,
  fn: () => R,
  options: LeakCheckOptions | undefined,
): Promise<{ result: Awaited<R>; check: CheckResult }> {
  if (typeof fn !== 'function') throw new TypeError(`${where}: fn must be a function, got ${typeof fn}`);
  const extra = checkOptions(where, options);
  enableTestMode();
  const handles = options?.handles ?? settings.handles;
  const stopTracking = handles ? useHandleTracking() : undefined;
  const block = new Run('block', where, currentRun());
  try {
    let result: Awaited<R>;
    try {
      result = await runs.run(block, fn);
    } catch (error) {
      block.failed = true;
      await checkRun(block, { waitMs: 0, extra, handles });
      throw error;
    }
    return { result, check: await checkRun(block, { waitMs: options?.waitMs ?? settings.waitMs, extra, handles }) };
  } finally {
    stopTracking?.();
  }
}
