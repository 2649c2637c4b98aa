/**
 * What is alive: every open scope and every held lease, each in one chain in arrival order (see
 * chain.ts). And the one periodic sweep that watches them for the leaks that only time shows:
 * stale scopes, leases held too long, and sites whose outstanding count keeps growing.
 *
 * Open scopes are held strongly on purpose: a scope whose task never ended is a leak to report,
 * not something to let the garbage collector hide. An unscoped lease's handle is watched through a
 * FinalizationRegistry, so that a lease dropped without release is noticed and its resource
 * destroyed (never handed to someone else: the code may still be using it).
 *
 * Every walk is a flat loop over a chain, and the sweep works in slices of about a millisecond,
 * continued on the next turn of the event loop, each phase keeping its place with a cursor: a
 * process with 100,000 open scopes or leases, or scopes nested 30,000 deep, is neither crashed nor
 * stalled by it (docs/performance.md#sweep).
 */
import { channel } from 'node:diagnostics_channel';
import { Chain, type Cursor, type Linked } from './chain.js';
import { channels } from '../report/channels.js';
import { onConfigReset, onSettingsChange, settings, type LeakPolicy } from '../config/config.js';
import { GrowthTracker, type SiteCount } from './growth.js';
import { newestFirst, type List, type Node } from './list.js';
import type { Originated } from '../report/origin.js';
import {
  deliver,
  plural,
  resourceLines,
  resourceName,
  scopeTitle,
  siteText,
  type LeakedResource,
  type ScopeInfo,
} from '../report/report.js';
import { formatSite, type RawSite } from '../lease/sites.js';

/** What the registry needs of a resource entry in a scope. */
export interface WatchedEntry extends Node {
  readonly isLease: boolean;
}

/** What the registry needs of a lease (implemented by `LeaseState`). */
export interface WatchedLease extends WatchedEntry, Linked, Originated {
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
  /** True when no scope holds it. */
  unscoped(): boolean;
  /** Called when the lease's handle was garbage-collected while the lease was still held. */
  collect(): void;
}

/** What the registry needs of a scope (implemented by `Scope`). */
export interface WatchedScope extends Node, Linked, List<WatchedScope>, Originated {
  readonly t0: number;
  /** When the sweep first saw it open (NaN: not yet). It was open then, so its age is at least `now - seenAt`. */
  seenAt: number;
  reportedStale: boolean;
  entries: List<WatchedEntry>;
  info(): ScopeInfo;
  /** Its own leak policy, else its parent's, else the global one. */
  leakPolicy(): LeakPolicy;
}

/** Every open scope, oldest first: a parent always comes before its children. */
export const scopes = new Chain<WatchedScope>();

/** Every held lease, scoped or not, oldest first. */
export const leases = new Chain<WatchedLease>();

let unscopedCount = 0;

/** Leases held by no scope. */
export function unscopedLeases(): number {
  return unscopedCount;
}

const finalizer = new FinalizationRegistry<WatchedLease>((lease) => lease.collect());

/** Registers an open scope. */
export function addScope(scope: WatchedScope): void {
  wake(); // first: it refreshes the coarse clock when the sweep was idle
  scopes.append(scope);
}

export function removeScope(scope: WatchedScope): void {
  scopes.unlink(scope);
}

/** Registers a held lease; `handle` is what the user holds, for a lease with no scope (watched for garbage). */
export function addLease(lease: WatchedLease, handle: object | undefined): void {
  leases.append(lease);
  if (handle !== undefined) {
    unscopedCount++;
    finalizer.register(handle, lease, lease);
    wake();
  }
}

export function removeLease(lease: WatchedLease, unscoped: boolean): void {
  leases.unlink(lease);
  if (unscoped) {
    unscopedCount--;
    finalizer.unregister(lease);
  }
}

// --- walking ------------------------------------------------------------------------------------

/** Every open scope, parents before their children. */
export function openScopes(): Iterable<WatchedScope> {
  return scopes;
}

/** The leases a scope holds (not its children's). */
export function* leasesOf(scope: WatchedScope): Generator<WatchedLease> {
  for (const entry of newestFirst(scope.entries)) if (entry.isLease) yield entry as WatchedLease;
}

/** Every held lease, oldest first. */
export function liveLeases(): Iterable<WatchedLease> {
  return leases;
}

// --- the sweep ----------------------------------------------------------------------------------

let timer: NodeJS.Timeout | undefined;
let lastGrowthSample = 0;
export const growth = new GrowthTracker();
onConfigReset(() => growth.clear());

// A coarse clock for scope open times: performance.now() costs ~45 ns here, a quarter of a whole
// AsyncLocalStorage.run. The sweep refreshes it on every pass, so it is about one sweep period
// behind (at most 1 s), more after an event-loop stall: inspect().ageMs and the stale-scope-closed
// age are approximate. Stale detection does not rely on it (see the `seen` phase).
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
  timer = setInterval(tick, periodMs);
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
  heldCursor.rewind(); // a new threshold: every lease is judged again (reportedLong prevents repeats)
  if (periodMs > 0 && (scopes.size > 0 || leases.size > 0)) start();
});

/** How long one slice of a sweep may run before it yields to the event loop. */
const SLICE_MS = 1;

// Where each phase stands. Everything before `seenCursor` has a `seenAt`; before `staleCursor`,
// every scope was reported stale; before `heldCursor`, every lease was judged held too long (or is
// watched by its pool). The growth count restarts from the oldest lease on every sample.
const seenCursor: Cursor<WatchedScope> = scopes.cursor();
const staleCursor: Cursor<WatchedScope> = scopes.cursor();
const heldCursor: Cursor<WatchedLease> = leases.cursor();
const growthCursor: Cursor<WatchedLease> = leases.cursor();

const PHASES = ['stale', 'held', 'growth', 'done'] as const;

/** Outstanding old leases by kind, then by site. */
type GrowthCounts = Map<string, Map<string | undefined, SiteCount>>;

/** A sweep under way: when it started, and the growth sample it is counting (if one is due). */
interface Pass {
  readonly now: number;
  phase: 0 | 1 | 2 | 3;
  counts: GrowthCounts | undefined;
}

let pass: Pass | undefined;
const sweepChannel = channel(channels.sweep);
let continuation: NodeJS.Immediate | undefined;

function tick(): void {
  if (pass !== undefined) return; // the last sweep is still working through its slices
  if (scopes.size === 0 && leases.size === 0) {
    stop(); // nothing to watch: wake() restarts the sweep when something opens
    growth.clear(); // nothing is outstanding, so nothing is growing: inspect() must not say otherwise
    return;
  }
  begin();
  resume();
}

function resume(): void {
  continuation = undefined;
  const p = pass;
  if (p === undefined) return;
  const t0 = performance.now();
  const done = run(t0 + SLICE_MS);
  if (sweepChannel.hasSubscribers) {
    sweepChannel.publish({ durationMs: performance.now() - t0, phase: PHASES[p.phase], done, scopes: scopes.size, leases: leases.size });
  }
  if (done) pass = undefined;
  else {
    continuation = setImmediate(resume);
    continuation.unref();
  }
}

/** Starts a pass: reads the clock, and marks the scopes opened since the last pass as seen now. */
function begin(): void {
  const now = (clock = performance.now());
  // A flat write per new scope, all at once: the scopes counted here were all open at `now`.
  if (settings.staleScopeMs > 0) {
    for (let s = seenCursor.next(); s !== undefined; s = seenCursor.next()) {
      s.seenAt = now;
      seenCursor.passed(s);
    }
  }
  const growthDue = settings.growthIntervalMs > 0 && now - lastGrowthSample >= settings.growthIntervalMs;
  if (growthDue) {
    lastGrowthSample = now;
    growthCursor.rewind();
  }
  pass = { now, phase: 0, counts: growthDue ? new Map() : undefined };
}

/** Works on the current pass until `deadline`; returns true when the pass is done. */
function run(deadline: number): boolean {
  const p = pass as Pass;
  if (p.phase === 0) {
    if (settings.staleScopeMs > 0 && !checkStale(p.now, settings.staleScopeMs, deadline)) return false;
    p.phase = 1;
  }
  if (p.phase === 1) {
    if (settings.leakThresholdMs > 0 && !checkHeld(p.now, settings.leakThresholdMs, deadline)) return false;
    p.phase = 2;
  }
  if (p.phase === 2) {
    if (p.counts !== undefined && !countGrowth(p.now, p.counts, deadline)) return false;
    p.phase = 3;
  }
  if (p.counts !== undefined) reportGrowth(p.counts);
  return true;
}

/**
 * One whole pass of the sweep, now, without yielding: for tests (a pass the timer began is
 * finished first).
 */
export function sweep(): void {
  if (continuation !== undefined) clearImmediate(continuation);
  continuation = undefined;
  if (pass !== undefined) run(Infinity);
  pass = undefined;
  if (scopes.size === 0 && leases.size === 0) {
    growth.clear();
    return;
  }
  begin();
  run(Infinity);
  pass = undefined;
}

function checkStale(now: number, thresholdMs: number, deadline: number): boolean {
  for (let scope = staleCursor.next(); scope !== undefined; scope = staleCursor.next()) {
    if (performance.now() >= deadline) return false; // ~40 ns; a visit that reports or formats costs 10-100 µs
    // Scopes are in the order they opened and were first seen in that order, so the first one that
    // is not stale yet (or not seen yet, NaN: opened during this pass) ends the walk.
    if (!(now - scope.seenAt >= thresholdMs)) return true;
    staleCursor.passed(scope);
    if (!scope.reportedStale) reportStale(scope, now, now - scope.seenAt, thresholdMs);
  }
  return true;
}

function reportStale(scope: WatchedScope, now: number, ageMs: number, thresholdMs: number): void {
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

function checkHeld(now: number, thresholdMs: number, deadline: number): boolean {
  for (let lease = heldCursor.next(); lease !== undefined; lease = heldCursor.next()) {
    if (performance.now() >= deadline) return false; // ~40 ns; a visit that reports or formats costs 10-100 µs
    if (now - lease.t0 < thresholdMs) return true; // oldest first: the rest are younger still
    heldCursor.passed(lease);
    // A pool with its own leakThresholdMs watches its leases itself (see Pool).
    if (lease.thresholdMs() === thresholdMs) checkHeldLease(lease, now, thresholdMs);
  }
  return true;
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

/**
 * Counts the leases that outlived a whole growth interval, per kind and site. Keyed by kind, then by
 * the site string itself: no key is built per lease (100,000 concatenations a sample would be
 * garbage enough to lengthen the next minor GC).
 */
function countGrowth(now: number, counts: GrowthCounts, deadline: number): boolean {
  const intervalMs = settings.growthIntervalMs;
  for (let lease = growthCursor.next(); lease !== undefined; lease = growthCursor.next()) {
    if (performance.now() >= deadline) return false; // ~40 ns; a visit that reports or formats costs 10-100 µs
    // Only leases that outlived a whole interval: in-flight work grows too when traffic ramps up,
    // and formatting the site of every young lease would cost the event loop for nothing.
    if (now - lease.t0 < intervalMs) return true; // oldest first: the rest are younger still
    growthCursor.passed(lease);
    const site = formatSite(lease.raw);
    let bySite = counts.get(lease.kind);
    if (bySite === undefined) counts.set(lease.kind, (bySite = new Map()));
    const entry = bySite.get(site);
    if (entry === undefined) bySite.set(site, { kind: lease.kind, site, count: 1 });
    else entry.count++;
  }
  return true;
}

function reportGrowth(counts: GrowthCounts): void {
  const intervalMs = settings.growthIntervalMs;
  const byKey = new Map<string, SiteCount>();
  for (const bySite of counts.values()) for (const count of bySite.values()) byKey.set(`${count.kind}\0${count.site ?? ''}`, count);
  for (const s of growth.sample(byKey, settings.growthSamples)) {
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
