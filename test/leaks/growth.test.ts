/**
 * Leak kind 5: acquisition sites whose count of outstanding leases keeps growing ("possible leak:
 * site => growth times, count"). GrowthTracker is the pure bookkeeping; the sweep samples live
 * leases into it every `growthIntervalMs` and reports a site after `growthSamples` rises in a row.
 */
import { describe, expect, it } from 'vitest';
import { configure, inspect, track, type Lease, type LeakReport } from '../../src/index.js';
import { GrowthTracker, type SiteCount } from '../../src/registry/growth.js';
import { sweep } from '../../src/registry/sweep.js';
import { collectReports, collectWarnings, flush, useCleanCustodian, sitesIn, busyWait } from '../helpers.js';

useCleanCustodian({ leaks: 'reclaim', growthIntervalMs: 1, growthSamples: 3 });

const siteOf = sitesIn(import.meta.url);

/** One sample: `site => count` for kind `k`. */
function counts(entries: Record<string, number>): Map<string, SiteCount> {
  return new Map(Object.entries(entries).map(([site, count]) => [`k\0${site}`, { kind: 'k', site, count }]));
}

describe('GrowthTracker: a site whose count rose in `samples` consecutive samples is a suspect', () => {
  it('reports a site when its streak of rises reaches `samples`', () => {
    const tracker = new GrowthTracker();
    expect(tracker.sample(counts({ a: 1 }), 3)).toEqual([]); // first sight: no rise yet
    expect(tracker.sample(counts({ a: 2 }), 3)).toEqual([]); // streak 1
    expect(tracker.sample(counts({ a: 3 }), 3)).toEqual([]); // streak 2
    expect(tracker.sample(counts({ a: 4 }), 3)).toEqual([{ kind: 'k', site: 'a', count: 4, growth: 3 }]);
  });

  it('reports again only at each multiple of `samples`, not on every sample', () => {
    const tracker = new GrowthTracker();
    const reported: number[] = [];
    for (let count = 1; count <= 10; count++) {
      for (const s of tracker.sample(counts({ a: count }), 2)) reported.push(s.growth);
    }
    expect(reported).toEqual([2, 4, 6, 8]);
  });

  it('resets the streak when the count stays the same or falls: a site that stops growing is not a suspect', () => {
    const tracker = new GrowthTracker();
    tracker.sample(counts({ a: 1 }), 2);
    tracker.sample(counts({ a: 2 }), 2);
    expect(tracker.sample(counts({ a: 3 }), 2)).toHaveLength(1);
    expect(tracker.suspects(2)).toEqual([{ kind: 'k', site: 'a', count: 3, growth: 2 }]);
    expect(tracker.sample(counts({ a: 3 }), 2)).toEqual([]); // flat
    expect(tracker.suspects(2)).toEqual([]);
    expect(tracker.sample(counts({ a: 4 }), 2)).toEqual([]); // streak starts again at 1
    expect(tracker.sample(counts({ a: 2 }), 2)).toEqual([]); // falls
    expect(tracker.sample(counts({ a: 3 }), 2)).toEqual([]); // 1
    expect(tracker.sample(counts({ a: 4 }), 2)).toEqual([{ kind: 'k', site: 'a', count: 4, growth: 2 }]);
  });

  it('forgets a site missing from a sample: when it comes back it starts from scratch', () => {
    const tracker = new GrowthTracker();
    tracker.sample(counts({ a: 1, b: 1 }), 2);
    tracker.sample(counts({ a: 2, b: 2 }), 2);
    tracker.sample(counts({ b: 3 }), 2); // a vanished (no outstanding lease)
    expect(tracker.suspects(2)).toEqual([{ kind: 'k', site: 'b', count: 3, growth: 2 }]);
    expect(tracker.sample(counts({ a: 5, b: 3 }), 2)).toEqual([]); // a is new again, not a rise from 2
    expect(tracker.sample(counts({ a: 6 }), 2)).toEqual([]); // a streak 1
    expect(tracker.sample(counts({ a: 7 }), 2)).toEqual([{ kind: 'k', site: 'a', count: 7, growth: 2 }]);
  });

  it('tracks sites independently and lists suspects largest count first', () => {
    const tracker = new GrowthTracker();
    tracker.sample(counts({ small: 1, big: 10, flat: 5 }), 1);
    const fresh = tracker.sample(counts({ small: 2, big: 20, flat: 5 }), 1);
    expect(fresh).toEqual([
      { kind: 'k', site: 'small', count: 2, growth: 1 },
      { kind: 'k', site: 'big', count: 20, growth: 1 },
    ]);
    expect(tracker.suspects(1)).toEqual([
      { kind: 'k', site: 'big', count: 20, growth: 1 },
      { kind: 'k', site: 'small', count: 2, growth: 1 },
    ]);
    expect(tracker.suspects(2)).toEqual([]);
  });

  it('forgets everything on clear()', () => {
    const tracker = new GrowthTracker();
    tracker.sample(counts({ a: 1 }), 1);
    tracker.sample(counts({ a: 2 }), 1);
    tracker.clear();
    expect(tracker.suspects(1)).toEqual([]);
    expect(tracker.sample(counts({ a: 3 }), 1)).toEqual([]);
  });
});

// The sweep timer also samples (every 5 ms here). Between two of our samples it would count the same
// number and reset the streak, so each scenario acquires, waits and sweeps synchronously.
function acquireCacheEntry(held: Lease<number>[]): void {
  held.push(track(held.length, { release: () => {}, kind: 'cache entry' })); // site:grow
}

function sampleNow(): void {
  busyWait(2); // more than growthIntervalMs since the previous sample
  sweep();
}

type Growth = Extract<LeakReport, { type: 'growth' }>;

describe('the sweep reports a site whose outstanding unscoped leases grow at every sample', () => {
  it('reports "possible leak: KIND acquired at SITE => outstanding count grew 3 times in a row, now N"', async () => {
    const { reports, stop } = collectReports();
    const held: Lease<number>[] = [];
    acquireCacheEntry(held);
    sampleNow(); // first sight: 1
    for (let i = 0; i < 3; i++) {
      acquireCacheEntry(held);
      sampleNow(); // 2, 3, 4
    }
    const snapshot = inspect();
    stop();
    const site = siteOf('grow', 'track');
    const growth = reports.filter((r): r is Growth => r.type === 'growth');
    expect(growth).toHaveLength(1);
    expect(growth[0]).toMatchObject({ type: 'growth', kind: 'cache entry', site, count: 4, growth: 3, intervalMs: 1 });
    expect(growth[0]?.message.split('\n')).toEqual([
      `possible leak: cache entry acquired at ${site} => outstanding count grew 3 times in a row, now 4`,
      '  Counted every 1 ms: leases from this line held longer than that. A cache warming up stops growing; a leak does not. Check that every path from this line releases what it acquires.',
    ]);
    expect(snapshot.suspects).toEqual([{ kind: 'cache entry', site, count: 4, growth: 3 }]);
    await Promise.all(held.map((l) => l.release()));
    expect(inspect().leases.outstanding).toBe(0);
  });

  it('reports it again after another `growthSamples` rises', async () => {
    const { reports, stop } = collectReports();
    const held: Lease<number>[] = [];
    acquireCacheEntry(held);
    sampleNow();
    for (let i = 0; i < 6; i++) {
      acquireCacheEntry(held);
      sampleNow();
    }
    stop();
    expect(reports.filter((r): r is Growth => r.type === 'growth').map((r) => [r.growth, r.count])).toEqual([
      [3, 4],
      [6, 7],
    ]);
    await Promise.all(held.map((l) => l.release()));
  });

  it('does not report a site that stopped growing (a cache that warmed up)', async () => {
    const { reports, stop } = collectReports();
    const held: Lease<number>[] = [];
    acquireCacheEntry(held);
    sampleNow();
    acquireCacheEntry(held);
    sampleNow();
    acquireCacheEntry(held);
    sampleNow();
    sampleNow(); // flat: the streak ends at 2 of 3
    acquireCacheEntry(held);
    sampleNow();
    const snapshot = inspect();
    stop();
    expect(reports).toEqual([]);
    expect(snapshot.suspects).toEqual([]);
    await Promise.all(held.map((l) => l.release()));
  });

  it('emits a ResourceLeakWarning with code CUSTODIAN_GROWTH under warn', async () => {
    await flush(); // earlier tests' warnings go out first
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const held: Lease<number>[] = [];
    acquireCacheEntry(held);
    sampleNow();
    for (let i = 0; i < 3; i++) {
      acquireCacheEntry(held);
      sampleNow();
    }
    await flush();
    stop();
    const warned = warnings.map((w) => `${w.name} ${w.code ?? ''}`);
    expect(warned).toEqual(['ResourceLeakWarning CUSTODIAN_GROWTH']);
    await Promise.all(held.map((l) => l.release()));
  });
});

describe('only leases held longer than one sampling interval are counted', () => {
  it('does not report in-flight work that grows with traffic, when each lease is short-lived', () => {
    configure({ growthIntervalMs: 40 });
    const { reports, stop } = collectReports();
    for (let inFlight = 1; inFlight <= 6; inFlight++) {
      busyWait(45); // the next sample is due
      const leases = Array.from({ length: inFlight }, (_, i) => track(i, { release: () => {}, kind: 'request' }));
      sweep(); // sees `inFlight` leases, each younger than the interval
      for (const lease of leases) void lease.release();
    }
    stop();
    expect(reports).toEqual([]);
    expect(inspect().suspects).toEqual([]);
  });

  it('does report the same growth when the leases outlive the interval', async () => {
    configure({ growthIntervalMs: 40 });
    const { reports, stop } = collectReports();
    const held: Lease<number>[] = [];
    for (let round = 1; round <= 4; round++) {
      held.push(track(round, { release: () => {}, kind: 'request' }));
      busyWait(45); // old enough to count, and the next sample is due
      sweep();
    }
    stop();
    expect(reports.filter((r) => r.type === 'growth').map((r) => (r.type === 'growth' ? [r.growth, r.count] : []))).toEqual([[3, 4]]);
    await Promise.all(held.map((l) => l.release()));
  });
});
