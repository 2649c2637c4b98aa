/**
 * `await expect(fn).not.toLeakResources(options?)`: expectNoLeaks() as a matcher. Without `.not`
 * it asserts that `fn` does leak, for tests of leak detection itself.
 */
import { runChecked } from './block.js';
import { leakLines } from './message.js';
import type { LeakCheckOptions } from './settings.js';

interface MatcherContext {
  readonly isNot: boolean;
}

interface MatcherResult {
  pass: boolean;
  message: () => string;
}

/** The matchers the setup file registers; `expect.extend(leakMatchers)` registers them without it. */
export const leakMatchers = {
  async toLeakResources(this: MatcherContext, received: unknown, options?: LeakCheckOptions): Promise<MatcherResult> {
    if (typeof received !== 'function') {
      throw new TypeError(
        `toLeakResources(): expect() must be given the function to run, got ${received === null ? 'null' : typeof received}`,
      );
    }
    const { check } = await runChecked('toLeakResources()', received as () => unknown, options);
    const pass = check.leaks.length > 0;
    return {
      pass,
      message: () =>
        pass
          ? [
              `expected the function to leave nothing behind, but it left ${check.leaks.length} (waited ${Math.round(check.waitedMs)} ms):`,
              ...leakLines(check.leaks),
            ].join('\n')
          : `expected the function to leave resources behind, but everything it acquired was released (waited ${Math.round(check.waitedMs)} ms)`,
    };
  },
};

declare module 'vitest' {
  // Merged into Vitest's own interface, whose type parameter it must repeat even though it is unused here.
  // eslint-disable-next-line @typescript-eslint/no-unused-vars
  interface Matchers<T> {
    /** Runs the function and passes when it left a lease, a scope or (with `handles`) a handle behind. Use with `.not` and `await`. */
    toLeakResources(options?: LeakCheckOptions): Promise<void>;
  }
}
