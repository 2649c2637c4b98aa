/**
 * The check itself: when a run's code has returned, wait a little for stragglers (bounded retries
 * with backoff, like goleak and Deno's sanitizers), then list what is still left behind.
 */
// From node:timers, not the global: a test that left vi.useFakeTimers() on must not freeze the check.
import { setTimeout as sleep } from 'node:timers/promises';
import { findLeftovers, settle, withoutIgnored, type Finding, type FoundLeak } from './findings.js';
import { forgetHandles } from './handles.js';
import type { IgnoreRules } from './ignore.js';
import { leakMessage, siteFrames, type Culprit } from './message.js';
import type { Run } from './runs.js';
import { accounted, rulesFor } from './settings.js';
import { now } from './clock.js';
import { CustodianError } from '../../src/index.js';

/** Thrown (a test failure) when a test, a file or an expectNoLeaks() function left resources behind. */
export class LeakCheckError extends CustodianError {
  override name = 'LeakCheckError';
  readonly code = 'ERR_CUSTODIAN_LEAK_CHECK';
  /** What was left behind. */
  readonly leaks: readonly FoundLeak[];
  /** How long the check waited for it to be released. */
  readonly waitedMs: number;

  /** @internal */
  constructor(culprit: Culprit, leaks: readonly FoundLeak[], waitedMs: number) {
    super(leakMessage(culprit, leaks, waitedMs));
    this.leaks = leaks;
    this.waitedMs = waitedMs;
    // Frames at the leaking lines: the test runner prints the code of the first one.
    this.stack = [`${this.name}: ${this.message}`, ...siteFrames(leaks)].join('\n');
  }
}

/** What a check found, and how long it waited. */
export interface CheckResult {
  readonly leaks: readonly FoundLeak[];
  readonly waitedMs: number;
}

/**
 * Waits up to `waitMs` for `run`'s leftovers to go (checking after 1, 2, 4... ms, at most 100 ms
 * apart), then returns those still there. Ends the run: what it left is settled (see settle()).
 */
export async function checkRun(run: Run, how: { waitMs: number; extra: IgnoreRules | undefined; handles: boolean }): Promise<CheckResult> {
  const { waitMs, extra, handles } = how;
  run.state = 'checking';
  const started = now();
  try {
    if (run.excused()) return { leaks: [], waitedMs: 0 };
    const rules = rulesFor(run, extra);
    const look = (): Finding[] => withoutIgnored(findLeftovers(run, accounted, now(), handles), rules);
    let found = look();
    let delay = 1;
    let waited = false; // the time a first look takes under load is not a wait, and is not reported as one
    while (found.some((f) => f.pending)) {
      waited = true;
      const left = started + waitMs - now();
      if (left <= 0) break;
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, 100);
      found = look();
    }
    return { leaks: found.map((f) => f.leak), waitedMs: waited ? now() - started : 0 };
  } finally {
    settle(run, accounted);
    run.state = 'done';
    forgetHandles(run);
  }
}
