/**
 * Process-wide settings. Read on hot paths through the exported `settings` object (a plain object
 * whose fields are replaced in place), so reading one costs a property load.
 */
import type { LeakPolicy, LeakReport } from '../report/types.js';
import { rules, validateOptions } from './validate.js';

export type { LeakPolicy };

/** When to record where resources and scopes were acquired. */
export type SiteCapture = 'always' | 'sampled' | 'off';

/** Settings accepted by {@link configure}. Every field is optional; omitted fields keep their value. */
export interface Config {
  /**
   * At scope end, leases the code did not release are always reclaimed. `warn` (default) also
   * reports them; `reclaim` reports only to `onLeak` and the diagnostics channel; `throw` also
   * makes the scope's close throw a `LeakError` (test mode; not for a task cancelled mid-run).
   */
  leaks?: LeakPolicy;
  /**
   * Record the acquiring line of every lease and scope (`always`, the default; about 3 µs each),
   * of a random `sampleRate` share of them (`sampled`, the default when `NODE_ENV=production`),
   * or never (`off`).
   */
  sites?: SiteCapture;
  /** Share of acquisitions whose site is recorded under `sites: 'sampled'`. Default 0.01. */
  sampleRate?: number;
  /** A scope open longer than this is reported as stale, once. 0 turns it off. Default 60000. */
  staleScopeMs?: number;
  /** A lease held longer than this is reported, and again when it comes back. 0 (default) is off. */
  leakThresholdMs?: number;
  /** How long a scope's close waits for one release before reporting it hung and moving on. 0 waits forever. Default 10000. */
  disposeTimeoutMs?: number;
  /**
   * How often outstanding leases are counted per site to find growing sites; only leases held
   * longer than this are counted (in-flight work is not a leak). 0 turns it off. Default 10000.
   */
  growthIntervalMs?: number;
  /** Consecutive growing counts after which a site is reported as a possible leak. Default 5. */
  growthSamples?: number;
  /**
   * Identical warnings are emitted at most once per this many ms; 0 emits all. Default 10000.
   * Identical: same report type, and the same kinds and sites of resource (release timeouts: and
   * label; scope-end leaks: and `cancelled`; stale scopes: the same opening site), whatever the
   * scopes are named. The next warning for that site says how many were suppressed.
   */
  warningThrottleMs?: number;
  /** Called with every leak report, whatever the policy. Exceptions it throws are reported, never propagated. */
  onLeak?: ((report: LeakReport) => void) | undefined;
}

/** The full settings, every field present. */
export type Settings = Required<Omit<Config, 'onLeak'>> & { onLeak: ((report: LeakReport) => void) | undefined };

function defaults(): Settings {
  return {
    leaks: 'warn',
    sites: process.env['NODE_ENV'] === 'production' ? 'sampled' : 'always',
    sampleRate: 0.01,
    staleScopeMs: 60_000,
    leakThresholdMs: 0,
    disposeTimeoutMs: 10_000,
    growthIntervalMs: 10_000,
    growthSamples: 5,
    warningThrottleMs: 10_000,
    onLeak: undefined,
  };
}

/** The live settings. Never replace the object: modules keep a reference to it. */
export const settings: Settings = defaults();

export const policyRule = rules.oneOf('reclaim', 'warn', 'throw');

const table = {
  leaks: policyRule,
  sites: rules.oneOf('always', 'sampled', 'off'),
  sampleRate: rules.fraction,
  staleScopeMs: rules.ms,
  leakThresholdMs: rules.ms,
  disposeTimeoutMs: rules.ms,
  growthIntervalMs: rules.ms,
  growthSamples: rules.positiveInt,
  warningThrottleMs: rules.ms,
  onLeak: rules.function,
} satisfies Record<keyof Config, unknown>;

const listeners = new Set<() => void>();
const resetListeners = new Set<() => void>();

/** @internal Runs `fn` whenever settings change (the sweep re-plans its timer). */
export function onSettingsChange(fn: () => void): void {
  listeners.add(fn);
}

/**
 * Changes process-wide settings and returns the settings as they were before, so that
 * `configure(previous)` restores them. Invalid values throw a `TypeError` naming the option,
 * and then nothing is changed.
 *
 * @example
 * const previous = configure({ leaks: 'throw', leakThresholdMs: 30_000 });
 * // ...
 * configure(previous);
 */
export function configure(options: Config): Settings {
  validateOptions('configure()', options, table);
  const previous = { ...settings };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined || key === 'onLeak') (settings as unknown as Record<string, unknown>)[key] = value;
  }
  for (const fn of listeners) fn();
  return previous;
}

/** @internal Runs `fn` on resetConfig() (the warning throttle forgets what it saw). */
export function onConfigReset(fn: () => void): void {
  resetListeners.add(fn);
}

/** Returns a copy of the current settings. */
export function getConfig(): Settings {
  return { ...settings };
}

/** Restores every setting to its default (the defaults read `NODE_ENV` again), forgets which warnings were throttled and the growth suspects. */
export function resetConfig(): void {
  Object.assign(settings, defaults());
  for (const fn of resetListeners) fn();
  for (const fn of listeners) fn();
}
