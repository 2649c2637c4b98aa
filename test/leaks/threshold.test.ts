/**
 * Leak kind 3 (HikariCP-style): a lease held longer than `leakThresholdMs` is reported once while
 * still held ("held-too-long"), and again when it comes back ("returned-late", "returned after N ms").
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { configure, openScope, track, type LeakReport } from '../../src/index.js';
import { sweep } from '../../src/registry/sweep.js';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { collectReports, collectWarnings, flush, sleep, useCleanCustodian, sitesIn } from '../helpers.js';

useCleanCustodian({ leakThresholdMs: 30, leaks: 'reclaim' }); // THRESHOLD_MS
beforeEach(flush);

const siteOf = sitesIn(import.meta.url);

type HeldTooLong = Extract<LeakReport, { type: 'held-too-long' }>;
type ReturnedLate = Extract<LeakReport, { type: 'returned-late' }>;

const noop = () => {};

/** leakThresholdMs in this file, and a wait long enough for a lease to be over it: twice as long. */
const THRESHOLD_MS = 30;
const OVER = 2 * THRESHOLD_MS;

describe('a lease held longer than leakThresholdMs is reported while still held', () => {
  it('reports "held-too-long" once with the site, the hold time and the threshold', async () => {
    const { reports, stop } = collectReports();
    const lease = track('conn', { release: noop, kind: 'mysql connection', label: 'primary' }); // site:held
    await sleep(OVER);
    sweep();
    sweep();
    stop();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long']);
    const report = reports[0] as HeldTooLong;
    expect(report.thresholdMs).toBe(30);
    expect(report.resource).toEqual({
      kind: 'mysql connection',
      label: 'primary',
      site: siteOf('held', 'track'),
      heldMs: expect.any(Number),
    });
    expect(report.resource.heldMs).toBeGreaterThanOrEqual(30);
    expect(report.resource.heldMs).toBeLessThan(1000);
    expect(report.message.split('\n')).toEqual([
      `mysql connection (primary) acquired at ${siteOf('held', 'track')} has been held for ${Math.round(report.resource.heldMs)} ms (leakThresholdMs is 30) and is not released yet`,
      '  Something holds it longer than expected: a slow operation, a missing release on some path, or a threshold too low for this work. A follow-up is reported when it comes back.',
    ]);
    await lease.release();
  });

  it('watches leases held by a scope as well as unscoped ones', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope();
    const lease = scope.track('conn', { release: noop, kind: 'scoped connection' }); // site:scoped
    await sleep(OVER);
    sweep();
    stop();
    expect(reports).toMatchObject([{ type: 'held-too-long', resource: { kind: 'scoped connection', site: siteOf('scoped', 'track') } }]);
    await lease.release();
    await scope.close();
  });

  it('emits a ResourceLeakWarning with code CUSTODIAN_HELD_TOO_LONG under warn', async () => {
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const lease = track('conn', { release: noop, kind: 'slow connection' });
    await sleep(OVER);
    sweep();
    configure({ leaks: 'reclaim' });
    await lease.release();
    await flush();
    stop();
    expect(warnings.map((w) => [w.name, w.code])).toEqual([['ResourceLeakWarning', 'CUSTODIAN_HELD_TOO_LONG']]);
    expect(warnings[0]?.message).toMatch(
      /^slow connection acquired at test\/leaks\/threshold\.test\.ts:\d+:\d+ has been held for \d+ ms \(leakThresholdMs is 30\) and is not released yet$/,
    );
  });
});

describe('a lease reported as held too long gets a "returned-late" follow-up when released', () => {
  it('says "returned after N ms" with the total hold time', async () => {
    const { reports, stop } = collectReports();
    const released: string[] = [];
    const lease = track('conn', { release: (v) => void released.push(v), kind: 'mysql connection' }); // site:late
    await sleep(OVER);
    sweep();
    await sleep(10);
    await lease.release();
    stop();
    expect(released).toEqual(['conn']);
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    const late = reports[1] as ReturnedLate;
    expect(late.thresholdMs).toBe(30);
    expect(late.resource).toMatchObject({ kind: 'mysql connection', label: undefined, site: siteOf('late', 'track') });
    expect(late.resource.heldMs).toBeGreaterThanOrEqual(OVER + 5);
    expect(late.resource.heldMs).toBeGreaterThan((reports[0] as HeldTooLong).resource.heldMs);
    expect(late.message).toBe(
      `mysql connection acquired at ${siteOf('late', 'track')} was returned after ${Math.round(late.resource.heldMs)} ms (reported earlier as held longer than leakThresholdMs 30)`,
    );
  });

  it('follows up when the owning scope reclaims it, too', async () => {
    allowLeaks();
    const { reports, stop } = collectReports();
    const scope = openScope();
    scope.track('conn', { release: noop, kind: 'forgotten' });
    await sleep(OVER);
    sweep();
    await scope.close();
    stop();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late', 'unreleased']);
  });

  it('follows up once only, however often it is released', async () => {
    const { reports, stop } = collectReports();
    const lease = track('conn', { release: noop });
    await sleep(OVER);
    sweep();
    await lease.release();
    await lease.release();
    stop();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
  });
});

describe('a lease released within leakThresholdMs is not reported', () => {
  it('reports nothing, neither held-too-long nor returned-late', async () => {
    const { reports, stop } = collectReports();
    const lease = track('conn', { release: noop });
    await lease.release(); // at once: no sweep can run while it is held

    await sleep(OVER);
    sweep();
    stop();
    expect(reports).toEqual([]);
  });

  it('does not report a lease still held but younger than the threshold', async () => {
    const { reports, stop } = collectReports();
    const lease = track('conn', { release: noop });
    sweep();
    await lease.release();
    stop();
    expect(reports).toEqual([]);
  });
});

describe('leakThresholdMs 0 (the default) turns the check off', () => {
  it('never reports a long hold', async () => {
    configure({ leakThresholdMs: 0 });
    const { reports, stop } = collectReports();
    const lease = track('conn', { release: noop });
    await sleep(OVER);
    sweep();
    await lease.release();
    stop();
    expect(reports).toEqual([]);
  });
});

describe('held-too-long follows the leak policy of the scope that holds the lease', () => {
  // held-too-long and returned-late use the owning scope's `leaks` policy; unscoped leases the global one.
  it('emits no warning for a lease of a scope opened with leaks: "reclaim" under a global "warn"', async () => {
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const scope = openScope({ leaks: 'reclaim' });
    const lease = scope.track('conn', { release: noop, kind: 'quiet connection' });
    await sleep(OVER);
    sweep();
    await lease.release();
    await scope.close();
    await flush();
    stop();
    stopReports();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    expect(warnings.filter((w) => w.name === 'ResourceLeakWarning')).toEqual([]);
  });

  it('emits no warning for a lease of a child of a scope opened with leaks: "reclaim" (the policy is inherited)', async () => {
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const parent = openScope({ leaks: 'reclaim' });
    const child = parent.fork();
    const lease = child.track('conn', { release: noop, kind: 'quiet connection' });
    await sleep(OVER);
    sweep();
    await lease.release();
    await parent.close();
    await flush();
    stop();
    stopReports();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    expect(warnings.filter((w) => w.name === 'ResourceLeakWarning')).toEqual([]);
  });

  it('warns, held-too-long then returned-late, for a lease of a scope opened with leaks: "warn" under a global "reclaim"', async () => {
    const { warnings, stop } = collectWarnings();
    const scope = openScope({ leaks: 'warn' });
    const lease = scope.track('conn', { release: noop, kind: 'loud connection' });
    await sleep(OVER);
    sweep();
    await lease.release();
    await scope.close();
    await flush();
    stop();
    expect(warnings.map((w) => [w.name, w.code])).toEqual([
      ['ResourceLeakWarning', 'CUSTODIAN_HELD_TOO_LONG'],
      ['ResourceLeakWarning', 'CUSTODIAN_RETURNED_LATE'],
    ]);
  });

  it('uses the global policy for an unscoped lease: no warning under a global "reclaim"', async () => {
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const lease = track('conn', { release: noop, kind: 'unscoped connection' });
    await sleep(OVER);
    sweep();
    await lease.release();
    await flush();
    stop();
    stopReports();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    expect(warnings).toEqual([]);
  });
});
