/**
 * Test helpers: a clean configuration per test, and capture of what custodian reports.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, beforeEach } from 'vitest';
import { configure, inspect, resetConfig, type Config, type LeakReport } from '../src/index.js';
import { resetWarningThrottle } from '../src/report.js';

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
