/**
 * Test mode's process-wide settings and the calls that adjust them: configureLeakCheck(),
 * ignoreLeaks(), ignoreCurrent(), and allowLeaks() for one test.
 */
import { liveLeases, openScopes, rules, validateOptions } from '../../src/internal.js';
import { useHandleTracking } from './handles.js';
import { checkRules, type IgnoreRules } from './ignore.js';
import { currentRun, type Run } from './runs.js';

/** Options of the leak check, for the setup file (configureLeakCheck) or one expectNoLeaks() call. */
export interface LeakCheckOptions {
  /**
   * How long to wait for leftovers to be released before deciding, in ms: a test whose code gives
   * a connection back just after the test returns passes. Checks back after 1, 2, 4... ms, at most
   * 100 ms apart. A test that leaves nothing behind never waits. Default 1000.
   */
  waitMs?: number | undefined;
  /** Also fail on timers, sockets, servers, file handles... the test started and left running. Default false. */
  handles?: boolean | undefined;
  /** What not to report (added to the rules of ignoreLeaks()). */
  ignore?: IgnoreRules | undefined;
}

export const checkOptionRules = {
  waitMs: rules.ms,
  handles: (value: unknown) => (typeof value === 'boolean' ? undefined : 'true or false'),
  ignore: (value: unknown) =>
    typeof value === 'object' && value !== null && !Array.isArray(value) ? undefined : 'an object like { sites: [...], kinds: [...] }',
};

export const settings = {
  waitMs: 1000,
  handles: false,
  /** Global ignore rules: configureLeakCheck({ ignore }) and ignoreLeaks(). */
  ignore: [] as IgnoreRules[],
};

let stopTracking = () => {};

/** Leases and scopes already reported, ignored or excused (see findings.settle), and those ignoreCurrent() adopted. */
export const accounted = new WeakSet<object>();

/** Checks options and returns their ignore rules checked and copied. */
export function checkOptions(where: string, options: LeakCheckOptions | undefined): IgnoreRules | undefined {
  validateOptions(where, options, checkOptionRules);
  return options?.ignore === undefined ? undefined : checkRules(`${where}: option 'ignore'`, options.ignore);
}

/**
 * Sets how the leak check runs for every test of this process: `waitMs`, `handles`, and `ignore`
 * rules (added to those of ignoreLeaks()). Call it from a setup file, after importing
 * `custodian/vitest/setup`. Invalid options throw a TypeError naming the option.
 *
 * @example
 * // test/setup.ts, listed in setupFiles
 * import 'custodian/vitest/setup';
 * import { configureLeakCheck } from 'custodian/vitest';
 * configureLeakCheck({ waitMs: 200, handles: true });
 */
export function configureLeakCheck(options: LeakCheckOptions): void {
  if (typeof options !== 'object' || options === null)
    throw new TypeError(
      `configureLeakCheck(): options must be an object like { waitMs: 200 }, got ${options === null ? 'null' : typeof options}`,
    );
  const ignore = checkOptions('configureLeakCheck()', options);
  if (options.waitMs !== undefined) settings.waitMs = options.waitMs;
  if (options.handles !== undefined && options.handles !== settings.handles) {
    settings.handles = options.handles;
    if (options.handles) stopTracking = useHandleTracking();
    else stopTracking();
  }
  if (ignore !== undefined) settings.ignore.push(ignore);
}

/**
 * Never reports leftovers matching `rules`, in any test of this process: a connection the suite
 * shares on purpose, a timer a library starts once.
 *
 * @example
 * ignoreLeaks({ sites: ['test/support/db.ts'], kinds: ['metrics timer'] });
 */
export function ignoreLeaks(rules: IgnoreRules): void {
  settings.ignore.push(checkRules('ignoreLeaks()', rules));
}

/**
 * Adopts what exists now: every lease held and scope open at this moment is never reported
 * (goleak's IgnoreCurrent). For turning the check on in a suite with known leaks, or after a helper
 * that leaves something on purpose. Later acquisitions are checked as usual.
 */
export function ignoreCurrent(): void {
  for (const scope of openScopes()) accounted.add(scope);
  for (const lease of liveLeases()) accounted.add(lease);
}

/**
 * Opts the current test out of the leak check: with no rules, nothing it leaves behind is
 * reported; with rules, what matches them is not. Call it in the test (or its beforeEach).
 *
 * @example
 * test('reports the connection it leaks', async () => {
 *   allowLeaks({ kinds: ['mysql connection'] });
 *   // ...
 * });
 */
export function allowLeaks(rules?: IgnoreRules): void {
  const run = currentRun();
  if (run === undefined || run.kind === 'file') {
    throw new Error(
      'allowLeaks() must be called inside a test, its beforeEach/afterEach, or expectNoLeaks(): outside them there is no test to opt out. Use ignoreLeaks() for the whole suite.',
    );
  }
  if (rules === undefined) run.allowed = true;
  else run.ignore.push(checkRules('allowLeaks()', rules));
}

/**
 * The ignore rules that apply to `run`'s check: the global ones, the call's options, and its own
 * allowLeaks(rules). Not an enclosing test's: an explicit expectNoLeaks() checks what it is told to.
 */
export function rulesFor(run: Run, extra: IgnoreRules | undefined): IgnoreRules[] {
  const all = [...settings.ignore, ...run.ignore];
  if (extra !== undefined) all.push(extra);
  return all;
}
