/**
 * Test helpers: a clean configuration per test, and capture of what custodian reports.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import { configure, inspect, resetConfig, type Config, type LeakReport } from '../src/index.js';
import { resetWarningThrottle } from '../src/report/deliver.js';

/** Number of runs for property tests: at least 1,000 under CI, fewer locally for speed. */
export const PROPERTY_RUNS = process.env['CI'] ? 1000 : 200;

/**
 * Resets custodian before and after each test of the calling file: default settings except
 * `overrides` (warnings are never throttled in tests), and no open scope left behind.
 */
export function useCleanCustodian(overrides: Config = {}): void {
  beforeEach(() => {
    resetConfig();
    resetWarningThrottle();
    configure({ warningThrottleMs: 0, ...overrides });
  });
  afterEach(() => {
    resetConfig();
    resetWarningThrottle();
  });
}

/** For files whose subject is leaking: the leak check (custodian/vitest) does not report what their tests leave behind. */
export function allowLeaksInEveryTest(): void {
  beforeEach(() => allowLeaks());
}

/** Collects every leak report published on the `custodian:leak` channel until `stop()`. */
export function collectReports(): { reports: LeakReport[]; stop: () => void } {
  const reports: LeakReport[] = [];
  const onMessage = (message: unknown) => reports.push(message as LeakReport);
  subscribe('custodian:leak', onMessage);
  return { reports, stop: () => unsubscribe('custodian:leak', onMessage) };
}

/** Collects the process warnings emitted until `stop()` (they are emitted on the next tick). */
export function collectWarnings(): { warnings: (Error & { code?: string; detail?: string })[]; stop: () => void } {
  const warnings: (Error & { code?: string; detail?: string })[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on('warning', onWarning);
  return { warnings, stop: () => process.off('warning', onWarning) };
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Lets pending microtasks and process.nextTick callbacks (warnings) run. */
export const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Number of open scopes right now. */
export const openScopeCount = () => inspect().scopes.open;

/**
 * Returns `siteOf(name, callee)`: the `file:line:column` custodian should report for the call to
 * `callee` on the one line of the test file that ends with `// site:NAME`. Computed from the source
 * text, not from a stack, so it also checks that reported lines map back to the TypeScript source.
 */
export function sitesIn(moduleUrl: string): (name: string, callee: string) => string {
  const path = fileURLToPath(moduleUrl);
  const file = relative(process.cwd(), path);
  const source = readFileSync(path, 'utf8').split('\n');
  return (name, callee) => {
    const marker = `// site:${name}`;
    const lines = source.flatMap((text, i) => (text.trimEnd().endsWith(marker) ? [i] : []));
    const index = lines[0];
    if (index === undefined || lines.length !== 1) throw new Error(`expected exactly one line marked ${marker}`);
    const column = (source[index] ?? '').search(new RegExp(`\\b${callee}[(<]`));
    if (column === -1) throw new Error(`no call to ${callee} on the line marked ${marker}`);
    return `${file}:${index + 1}:${column + 1}`;
  };
}

/** What `fn` throws; fails the test when it does not throw. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

/** Awaits `promise` and returns its rejection reason; fails the test when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

/** A promise that never settles. */
export const never = () => new Promise<never>(() => {});

/** A promise plus its resolver, to hold a body or a release until the test lets it go. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Spins for `ms` without yielding: no timer (the sweep's included) can run in between. */
export function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // spin
  }
}

/**
 * Collects garbage (and lets finalizers run) until `until()` says so, at most `rounds` times.
 * `until` may deref WeakRefs, which keeps their targets alive to the end of the current job:
 * so a check and a collection never share a job.
 */
export async function collectGarbage(until: () => boolean, rounds = 30): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < rounds; i++) {
    await sleep(5);
    gc();
    await sleep(5);
    if (until()) return;
  }
}

/**
 * Polls `read` until `done(value)`, or `timeoutMs` passed; returns the last value either way, so
 * that the caller's `expect` shows what was seen. For server-side state that lags a client's close.
 */
export async function settle<V>(read: () => Promise<V>, done: (value: V) => boolean, timeoutMs = 3_000): Promise<V> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || performance.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
