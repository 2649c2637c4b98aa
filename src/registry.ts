/**
 * What is alive: the root scopes (each holds its children and resources), and the leases acquired
 * with no scope. And the one periodic sweep that watches them for the leaks that only time shows:
 * stale scopes, leases held too long, and sites whose outstanding count keeps growing.
 *
 * Open scopes are held strongly on purpose: a scope whose task never ended is a leak to report,
 * not something to let the garbage collector hide. Unscoped leases are held weakly, through a
 * FinalizationRegistry, so that a lease dropped without release is noticed and its resource given
 * back.
 */
import { onConfigReset, onSettingsChange, settings, type LeakPolicy } from './config.js';
import { GrowthTracker, type SiteCount } from './growth.js';
import { newestFirst, push, remove, type List, type Node } from './list.js';
import type { Originated } from './origin.js';
import { deliver, plural, resourceLines, resourceName, scopeTitle, siteText, type LeakedResource, type ScopeInfo } from './report.js';
import { formatSite, type RawSite } from './sites.js';

/** What the registry needs of a resource entry in a scope. */
export interface WatchedEntry extends Node {
  readonly isLease: boolean;
}

/** What the registry needs of a lease (implemented by `LeaseState`). */
export interface WatchedLease extends WatchedEntry, Originated {
  readonly kind: string;
  readonly label: string | undefined;
  readonly raw: RawSite | undefined;
  readonly t0: number;
  reportedLong: boolean;
  describe(now: number): LeakedResource;
  /** The leak policy that applies to it: its scope's, else the global one. */
  leakPolicy(): LeakPolicy;
  /** The held-too-long threshold that applies to it: its pool's own, else the global one. */
  thresholdMs(): number;
  /** Called when the lease's handle was garbage-collected while the lease was still held. */
  collect(): void;
}

/** What the registry needs of a scope (implemented by `Scope`). */
export interface WatchedScope extends Node, List<WatchedScope>, Originated {
  readonly t0: number;
  /** When the sweep first saw it open (0: not yet). It was open then, so its age is at least `now - seenAt`. */
  seenAt: number;
  reportedStale: boolean;
  entries: List<WatchedEntry>;
  info(): ScopeInfo;
  /** Its own leak policy, else its parent's, else the global one. */
  leakPolicy(): LeakPolicy;
}

/** Root scopes: scopes opened with no parent. Children hang off their parents. */
export const roots: List<WatchedScope> = { tail: undefined };

/** Leases acquired with no scope, not yet released. */
export const unscoped: List<WatchedLease> = { tail: undefined };

const finalizer = new FinalizationRegistry<WatchedLease>((lease) => lease.collect());

/** Registers a lease acquired with no scope; `handle` is what the user holds. */
export function addUnscoped(handle: object, lease: WatchedLease): void {
  push(unscoped, lease);
  finalizer.register(handle, lease, lease);
  wake();
}

export function removeUnscoped(lease: WatchedLease): void {
  remove(unscoped, lease);
  finalizer.unregister(lease);
}

// --- walking ------------------------------------------------------------------------------------

/** Every open scope, parents before their children. */
export function* openScopes(from: List<WatchedScope> = roots): Generator<WatchedScope> {
  for (const scope of newestFirst(from)) {
    yield scope;
    yield* openScopes(scope);
  }
}

/** The leases a scope holds (not its children's). */
export function* leasesOf(scope: WatchedScope): Generator<WatchedLease> {
  for (const entry of newestFirst(scope.entries)) if (entry.isLease) yield entry as WatchedLease;
}

/** Every outstanding lease: in open scopes, then unscoped. */
export function* liveLeases(): Generator<WatchedLease> {
  for (const scope of openScopes()) yield* leasesOf(scope);
  yield* newestFirst(unscoped);
}

// --- the sweep ----------------------------------------------------------------------------------

let timer: NodeJS.Timeout | undefined;
let lastGrowthSample = 0;
export const growth = new GrowthTracker();
onConfigReset(() => growth.clear());

// A coarse clock for scope open times: performance.now() costs ~45 ns here, a quarter of a whole
// AsyncLocalStorage.run. The sweep refreshes it on every pass, so it is about one sweep period
// behind (at most 1 s), more after an event-loop stall: inspect().ageMs and the stale-scope-closed
// age are approximate. Stale detection does not rely on it (see checkStale).
let clock = performance.now();

/** performance.now() as of the last sweep, settings change, or open while the sweep was idle. */
export function coarseNow(): number {
  return clock;
}

/** Starts the sweep if it is needed and not running. Called whenever something opens. */
export function wake(): void {
  if (timer !== undefined) return;
  clock = performance.now(); // with no sweep to refresh it, the clock is read on every open
  if (periodMs > 0) start();
}

/** The sweep period the settings ask for: half the smallest threshold, within 5 ms..1 s; 0 when nothing is enabled. */
function computePeriod(): number {
  const wanted = [settings.staleScopeMs / 2, settings.leakThresholdMs / 2, settings.growthIntervalMs].filter((ms) => ms > 0);
  if (wanted.length === 0) return 0;
  return Math.max(5, Math.min(1000, ...wanted));
}

let periodMs = computePeriod();

function start(): void {
  timer = setInterval(sweep, periodMs);
  timer.unref(); // the sweep must never keep a process alive
}

function stop(): void {
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
}

onSettingsChange(() => {
  clock = performance.now();
  periodMs = computePeriod();
  stop();
  if (periodMs > 0 && (roots.tail !== undefined || unscoped.tail !== undefined)) start();
});

/** One pass of the sweep. Exported so tests can run it without waiting. */
export function sweep(): void {
  const now = (clock = performance.now());
  if (roots.tail === undefined && unscoped.tail === undefined) {
    stop(); // nothing to watch: wake() restarts the sweep when something opens
    growth.clear(); // nothing is outstanding, so nothing is growing: inspect() must not say otherwise
    return;
  }
  if (settings.staleScopeMs > 0) checkStale(now, settings.staleScopeMs);
  if (settings.leakThresholdMs > 0) checkHeld(now, settings.leakThresholdMs);
  if (settings.growthIntervalMs > 0 && now - lastGrowthSample >= settings.growthIntervalMs) {
    lastGrowthSample = now;
    sampleGrowth(now);
  }
}

function checkStale(now: number, thresholdMs: number): void {
  for (const scope of openScopes()) {
    if (scope.reportedStale) continue;
    // The coarse t0 may be far behind after an event-loop stall; the first sighting is not: the
    // scope was open then. So a scope is never reported before it really is staleScopeMs old.
    if (scope.seenAt === 0) {
      scope.seenAt = now;
      continue;
    }
    const ageMs = now - scope.seenAt;
    if (ageMs < thresholdMs) continue;
    scope.reportedStale = true;
    const info = scope.info();
    const resources = [...leasesOf(scope)].map((l) => l.describe(now));
    let owned = 0;
    for (const entry of newestFirst(scope.entries)) if (!entry.isLease) owned++;
    const lines = resources.length > 0 ? resourceLines(resources) : [];
    if (owned > 0) lines.push(`  and ${plural(owned, 'resource')} it owns through use(), adopt() or defer()`);
    if (lines.length === 0) lines.push('  (nothing)');
    deliver(
      {
        type: 'stale-scope',
        scope: info,
        ageMs,
        thresholdMs,
        resources,
        message: [
          `${scopeTitle(info)} has been open for at least ${Math.round(ageMs)} ms (staleScopeMs is ${thresholdMs}); opened at ${siteText(info.site)}; it holds ${plural(resources.length, 'lease')}:`,
          ...lines,
          `  If its task has finished, the code that should close the scope never ran on this path: close it on every path (withScope, or \`await using scope = openScope()\`). If the task is meant to run this long, raise staleScopeMs.`,
        ].join('\n'),
      },
      scope.leakPolicy(),
    );
  }
}

function checkHeld(now: number, thresholdMs: number): void {
  for (const lease of liveLeases()) {
    // A pool with its own leakThresholdMs watches its leases itself (see Pool).
    if (lease.thresholdMs() === thresholdMs) checkHeldLease(lease, now, thresholdMs);
  }
}

/** Reports `lease` once if it has been held `thresholdMs` or longer. */
export function checkHeldLease(lease: WatchedLease, now: number, thresholdMs: number): void {
  if (lease.reportedLong || now - lease.t0 < thresholdMs) return;
  lease.reportedLong = true;
  const resource = lease.describe(now);
  deliver(
    {
      type: 'held-too-long',
      resource,
      thresholdMs,
      message: [
        `${resourceName(resource)} acquired at ${siteText(resource.site)} has been held for ${Math.round(resource.heldMs)} ms (leakThresholdMs is ${thresholdMs}) and is not released yet`,
        `  Something holds it longer than expected: a slow operation, a missing release on some path, or a threshold too low for this work. A follow-up is reported when it comes back.`,
      ].join('\n'),
    },
    lease.leakPolicy(),
  );
}

function sampleGrowth(now: number): void {
  const intervalMs = settings.growthIntervalMs;
  const counts = new Map<string, SiteCount>();
  for (const lease of liveLeases()) {
    // Only leases that outlived a whole interval: in-flight work grows too when traffic ramps up,
    // and formatting the site of every young lease would cost the event loop for nothing.
    if (now - lease.t0 < intervalMs) continue;
    const site = formatSite(lease.raw);
    const key = `${lease.kind}\0${site ?? ''}`;
    const entry = counts.get(key);
    if (entry === undefined) counts.set(key, { kind: lease.kind, site, count: 1 });
    else entry.count++;
  }
  for (const s of growth.sample(counts, settings.growthSamples)) {
    deliver(
      {
        type: 'growth',
        kind: s.kind,
        site: s.site,
        count: s.count,
        growth: s.growth,
        intervalMs,
        message: [
          `possible leak: ${s.kind} acquired at ${siteText(s.site)} => outstanding count grew ${s.growth} times in a row, now ${s.count}`,
          `  Counted every ${intervalMs} ms: leases from this line held longer than that. A cache warming up stops growing; a leak does not. Check that every path from this line releases what it acquires.`,
        ].join('\n'),
      },
      settings.leaks,
    );
  }
}
