/**
 * Who is charged for a leak. Each try of a test, each test file and each `expectNoLeaks()` call is
 * a Run. This module's AsyncLocalStorage carries the current Run through everything the run starts
 * (callbacks, timers, promises), and custodian's core records it on every lease and scope acquired
 * (see src/report/origin.ts). So with `test.concurrent` each test is charged for exactly what it acquired.
 *
 * This is a second AsyncLocalStorage beside the core's one, which makes every `await` a little
 * dearer; it only exists in test processes that load custodian/vitest (docs/testing.md#cost).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { LeakReport, LeakedResource } from '../../src/index.js';
import { type Originated, origins } from '../../src/internal.js';
import type { IgnoreRules } from './ignore.js';
import { now } from './clock.js';

/** A report about something a run acquired: reclaimed at a scope's close, collected, destroyed at a pool's close. */
export interface Charge {
  readonly report: LeakReport;
  readonly resource: LeakedResource | undefined;
  /** The lease (or scope) the report is about. */
  readonly subject: Originated | undefined;
  /** The run that acquired it, when the charge reaches an enclosing run after that run ended. */
  readonly lateFrom?: Run;
}

export type RunKind = 'test' | 'file' | 'block';

export class Run {
  /** `checking`: the run's code has returned and its leftovers are being waited for. */
  state: 'running' | 'checking' | 'done' = 'running';
  /** `allowLeaks()` with no rules: nothing this run leaves behind is reported. */
  allowed = false;
  /** The test failed on its own: its leftovers are a consequence, not reported. */
  failed = false;
  /** Rules given to `allowLeaks(rules)` in this run. */
  readonly ignore: IgnoreRules[] = [];
  /** Reports about what this run acquired, and late ones about runs it encloses. */
  readonly charges: Charge[] = [];
  /** A file's tests that are running now (file runs only). */
  readonly tests = new Set<Run>();
  readonly startedAt = now();

  constructor(
    readonly kind: RunKind,
    /** The full test name, the file's path, or `expectNoLeaks()`. */
    readonly name: string,
    /** The run it belongs to: a test's file, a block's test; late reports go there. */
    readonly parent: Run | undefined,
  ) {}

  /** The nearest enclosing run still able to report something: where late charges go. */
  openAncestor(): Run | undefined {
    let run = this.parent;
    while (run !== undefined && run.state === 'done') run = run.parent;
    return run;
  }

  /** True when `file` is this run or one it belongs to. */
  belongsTo(file: Run): boolean {
    return lineage(this).some((run) => run === file);
  }

  /**
   * Whether its own check reports nothing: allowLeaks() was called in it, or it failed on its own.
   * Only its own flags: an expectNoLeaks() inside a test that called allowLeaks() still checks.
   */
  excused(): boolean {
    return this.allowed || this.failed;
  }

  /** Whether what it leaves after its check is reported at all: not when it or an enclosing run is excused. */
  excusedLate(): boolean {
    return lineage(this).some((run) => run.excused());
  }
}

/** A run and the runs it belongs to, innermost first. */
export function lineage(run: Run): Run[] {
  const chain: Run[] = [];
  for (let r: Run | undefined = run; r !== undefined; r = r.parent) chain.push(r);
  return chain;
}

export const runs = new AsyncLocalStorage<Run>();

/** The file whose suite is running in this worker (set by the setup's aroundAll). */
let activeFile: Run | undefined;

export function setActiveFile(file: Run | undefined): void {
  activeFile = file;
}

/** The run of the test or block whose async context is current, if any. */
export function currentRun(): Run | undefined {
  return runs.getStore();
}

/**
 * Who acquires now. In a test's or block's async context: that run. Outside one (a callback of a
 * server or consumer started in beforeAll or at import), while exactly one test of the file runs:
 * that test, since nothing else is running; otherwise the file, reported at its end.
 */
export function acquiringRun(): Run | undefined {
  const run = runs.getStore();
  if (run !== undefined && run.kind !== 'file') return run;
  const file = run ?? activeFile;
  if (file === undefined) return undefined;
  if (file.tests.size === 1) for (const only of file.tests) return only;
  return file;
}

/** Makes custodian's core record the acquiring run on every lease and scope. Idempotent. */
export function installProbe(): void {
  origins.probe = acquiringRun;
}

/** The run that acquired what `subject` describes, if any. */
export function runOf(subject: Originated | undefined): Run | undefined {
  const origin = subject?.origin;
  return origin instanceof Run ? origin : undefined;
}
