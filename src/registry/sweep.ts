/**
 * The one periodic sweep that watches what is alive (registry.ts) for the leaks that only time
 * shows: scopes open longer than `staleScopeMs`, leases held longer than a `leakThresholdMs` (the
 * global one, or a pool's own), and acquisition sites whose count of old outstanding leases keeps
 * growing.
 *
 * It works in slices of about a millisecond, continued on the next turn of the event loop, each
 * phase keeping its place with a cursor: a process with 100,000 open scopes or leases, or scopes
 * nested 30,000 deep, is neither crashed nor stalled by it (docs/performance.md#sweep). It runs
 * only while something is open, on an unref'd timer.
 */
import { channel } from 'node:diagnostics_channel';
import { onConfigReset, onSettingsChange, settings } from '../config/config.js';
import { formatSite } from '../report/sites.js';
import { channels } from '../report/channels.js';
import { runInRoot } from '../util/root.js';
import { deliver } from '../report/deliver.js';
import { growthMessage, heldTooLongMessage, staleScopeMessage } from '../report/messages.js';
import type { Cursor } from './chain.js';
import { GrowthTracker, type SiteCount } from './growth.js';
import { newestFirst } from './list.js';
import { leases, leasesOf, scopes, type WatchedLease, type WatchedScope } from './registry.js';

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
  const wanted = [settings.staleScopeMs / 2, settings.growthIntervalMs, ...[...held.keys()].map((ms) => ms / 2)].filter((ms) => ms > 0);
  if (wanted.length === 0) return 0;
  return Math.max(5, Math.min(1000, ...wanted));
}

/**
 * Every held-too-long threshold in force: the global `leakThresholdMs`, and each pool's own. Each
 * has its cursor over the leases, oldest first: everything before it was judged against it.
 */
const held = new Map<number, { readonly cursor: Cursor<WatchedLease>; users: number }>();
let globalThreshold = 0;

/** Starts watching leases against `thresholdMs` (a pool's own `leakThresholdMs`); returns the function that stops. */
export function watchThreshold(thresholdMs: number): () => void {
  let entry = held.get(thresholdMs);
  if (entry === undefined) held.set(thresholdMs, (entry = { cursor: leases.cursor(), users: 0 }));
  entry.users++;
  replan();
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--(entry as { users: number }).users > 0) return;
    held.delete(thresholdMs);
    leases.dropCursor((entry as { cursor: Cursor<WatchedLease> }).cursor);
    replan();
  };
}

let unwatchGlobal: (() => void) | undefined;
let periodMs = computePeriod();

function start(): void {
  // In the root context: reports and hooks the sweep runs belong to no request.
  timer = runInRoot(() => setInterval(tick, periodMs));
  timer.unref(); // the sweep must never keep a process alive
}

function stop(): void {
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
}

/** Re-plans the timer after the settings or the thresholds changed. */
function replan(): void {
  clock = performance.now();
  periodMs = computePeriod();
  stop();
  if (periodMs > 0 && (scopes.size > 0 || leases.size > 0)) start();
}

onSettingsChange(() => {
  if (settings.leakThresholdMs !== globalThreshold) {
    // A new threshold: every lease is judged against it from the oldest (reportedLong prevents repeats).
    unwatchGlobal?.();
    unwatchGlobal = undefined;
    globalThreshold = settings.leakThresholdMs;
    if (globalThreshold > 0) unwatchGlobal = watchThreshold(globalThreshold);
  }
  replan();
});

/** How long one slice of a sweep may run before it yields to the event loop. */
const SLICE_MS = 1;

// Where each phase stands. Everything before `seenCursor` has a `seenAt`; before `staleCursor`,
// every scope was reported stale; the held cursors are above. The growth count restarts from the
// oldest lease on every sample.
const seenCursor: Cursor<WatchedScope> = scopes.cursor();
const staleCursor: Cursor<WatchedScope> = scopes.cursor();
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
    continuation = runInRoot(() => setImmediate(resume));
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
    for (const [thresholdMs, { cursor }] of held) if (!checkHeld(p.now, thresholdMs, cursor, deadline)) return false;
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
  const resources = [...leasesOf(scope)].map((l) => l.leaked(now));
  let owned = 0;
  for (const entry of newestFirst(scope.entries)) if (!entry.isLease) owned++;
  deliver(
    {
      type: 'stale-scope',
      scope: info,
      ageMs,
      thresholdMs,
      resources,
      message: staleScopeMessage(info, ageMs, thresholdMs, resources, owned),
    },
    scope.leakPolicy(),
  );
}

/** Judges the leases after `cursor` against `thresholdMs`: those whose threshold it is (their pool's, or the global one). */
function checkHeld(now: number, thresholdMs: number, cursor: Cursor<WatchedLease>, deadline: number): boolean {
  for (let lease = cursor.next(); lease !== undefined; lease = cursor.next()) {
    if (performance.now() >= deadline) return false; // ~40 ns; a visit that reports or formats costs 10-100 µs
    if (now - lease.t0 < thresholdMs) return true; // oldest first: the rest are younger still
    cursor.passed(lease);
    if (lease.thresholdMs() !== thresholdMs || lease.reportedLong) continue;
    lease.reportedLong = true;
    const resource = lease.leaked(now);
    deliver({ type: 'held-too-long', resource, thresholdMs, message: heldTooLongMessage(resource, thresholdMs) }, lease.leakPolicy());
  }
  return true;
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
        message: growthMessage(s.kind, s.site, s.growth, s.count, intervalMs),
      },
      settings.leaks,
    );
  }
}
