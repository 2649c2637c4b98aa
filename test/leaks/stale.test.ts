/**
 * Leak kind 2: a scope open longer than `staleScopeMs` (its task's end hook never ran) is reported
 * once, with where it was opened and what it holds, and again when it finally closes.
 *
 * Scope open times come from a coarse clock, so the sweep judges age from its own first sighting of
 * the scope (`seenAt`): the scope was open then, so its age is at least `now - seenAt`. With
 * staleScopeMs 50 the sweep period is 25 ms, so a scope is reported once it has really been open
 * 50–75 ms. The tests wait OLD_ENOUGH (twice that, and more) before sweeping.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { configure, openScope, type LeakReport } from '../../src/index.js';
import { sweep } from '../../src/registry/sweep.js';
import { allowLeaksInEveryTest, collectReports, collectWarnings, flush, sleep, useCleanCustodian, sitesIn } from '../helpers.js';

useCleanCustodian({ staleScopeMs: 50, leaks: 'reclaim' }); // STALE_MS
allowLeaksInEveryTest();
beforeEach(flush);

const siteOf = sitesIn(import.meta.url);

type Stale = Extract<LeakReport, { type: 'stale-scope' }>;
const stale = (reports: readonly LeakReport[]) => reports.filter((r): r is Stale => r.type === 'stale-scope');

const noop = () => {};

/** staleScopeMs in this file, and the sweep period it gives. */
const STALE_MS = 50;
const LAG_MS = STALE_MS / 2;
/** Long enough for a scope to be reported: at least 2 × (STALE_MS + one sweep period). */
const OLD_ENOUGH = 2 * (STALE_MS + LAG_MS);

describe('a scope open longer than staleScopeMs is reported as stale', () => {
  it('reports it once with its age, the opening site and the resources it holds', async () => {
    const { reports, stop } = collectReports();
    const before = performance.now();
    const scope = openScope({ name: 'worker' }); // site:open
    scope.track('conn', { release: noop, kind: 'redis connection', label: 'cache' }); // site:held
    sweep(); // the first sighting: the scope is open now, so later ages are measured from here
    const seen = performance.now();
    await sleep(OLD_ENOUGH);
    sweep();
    const elapsed = performance.now() - before;
    stop();
    const found = stale(reports);
    expect(found).toHaveLength(1);
    const report = found[0] as Stale;
    expect(report.scope).toEqual({ id: scope.id, name: 'worker', site: siteOf('open', 'openScope') });
    expect(report.thresholdMs).toBe(50);
    expect(report.ageMs).toBeGreaterThanOrEqual(50);
    // A lower bound of the age: measured from the first sighting, never from before the open.
    expect(report.ageMs).toBeLessThanOrEqual(performance.now() - seen);
    expect(report.ageMs).toBeLessThanOrEqual(elapsed);
    expect(report.ageMs).toBeLessThan(1000);
    expect(report.resources).toEqual([
      { kind: 'redis connection', label: 'cache', site: siteOf('held', 'track'), heldMs: expect.any(Number) },
    ]);
    // Lease hold times are exact.
    expect(report.resources[0]?.heldMs).toBeGreaterThanOrEqual(50);
    expect(report.resources[0]?.heldMs).toBeLessThanOrEqual(elapsed);
    expect(report.message.split('\n')).toEqual([
      `scope "worker" (#${scope.id}) has been open for at least ${Math.round(report.ageMs)} ms (staleScopeMs is 50); opened at ${siteOf('open', 'openScope')}; it holds 1 lease:`,
      `  redis connection (cache)  x1  acquired at ${siteOf('held', 'track')}  held ${Math.round(report.resources[0]?.heldMs ?? -1)} ms`,
      '  If its task has finished, the code that should close the scope never ran on this path: close it on every path (withScope, or `await using scope = openScope()`). If the task is meant to run this long, raise staleScopeMs.',
    ]);
    await scope.close();
  });

  it('reports it only once: a later sweep adds nothing', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope({ name: 'once' });
    await sleep(OLD_ENOUGH);
    sweep();
    await sleep(LAG_MS + 5);
    sweep();
    sweep();
    stop();
    expect(stale(reports).map((r) => r.scope.id)).toEqual([scope.id]);
    await scope.close();
  });

  it('does not report a scope younger than staleScopeMs', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope();
    sweep();
    stop();
    expect(reports).toEqual([]);
    await scope.close();
  });

  it('says "it holds 0 leases" and "(nothing)" for an empty scope', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope(); // site:empty
    await sleep(OLD_ENOUGH);
    sweep();
    stop();
    const report = stale(reports)[0] as Stale;
    expect(report.resources).toEqual([]);
    expect(report.message.split('\n')).toEqual([
      `scope #${scope.id} has been open for at least ${Math.round(report.ageMs)} ms (staleScopeMs is 50); opened at ${siteOf('empty', 'openScope')}; it holds 0 leases:`,
      '  (nothing)',
      '  If its task has finished, the code that should close the scope never ran on this path: close it on every path (withScope, or `await using scope = openScope()`). If the task is meant to run this long, raise staleScopeMs.',
    ]);
    await scope.close();
  });

  it('adds a line counting what the scope owns through use(), adopt() and defer(), after its leases', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope({ name: 'owner' }); // site:owner
    scope.defer(noop);
    scope.adopt('buffer', noop);
    scope.use({ [Symbol.dispose]: noop });
    scope.track('conn', { release: noop, kind: 'socket' }); // site:owner-lease
    await sleep(OLD_ENOUGH);
    sweep();
    stop();
    const report = stale(reports)[0] as Stale;
    expect(report.resources.map((r) => r.kind)).toEqual(['socket']); // only leases are listed as resources
    expect(report.message.split('\n').slice(0, 3)).toEqual([
      `scope "owner" (#${scope.id}) has been open for at least ${Math.round(report.ageMs)} ms (staleScopeMs is 50); opened at ${siteOf('owner', 'openScope')}; it holds 1 lease:`,
      `  socket  x1  acquired at ${siteOf('owner-lease', 'track')}  held ${Math.round(report.resources[0]?.heldMs ?? -1)} ms`,
      '  and 3 resources it owns through use(), adopt() or defer()',
    ]);
    await scope.close();
  });

  it('prints only the owned-resources line (singular) when the scope holds no lease', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope({ name: 'deferred' });
    scope.defer(noop);
    await sleep(OLD_ENOUGH);
    sweep();
    stop();
    const report = stale(reports)[0] as Stale;
    expect(report.resources).toEqual([]);
    expect(report.message.split('\n').slice(0, 2)).toEqual([
      `scope "deferred" (#${scope.id}) has been open for at least ${Math.round(report.ageMs)} ms (staleScopeMs is 50); opened at ${scope.site}; it holds 0 leases:`,
      '  and 1 resource it owns through use(), adopt() or defer()',
    ]);
    await scope.close();
  });

  it('lists only the leases the scope itself holds; a stale child is reported on its own', async () => {
    const { reports, stop } = collectReports();
    const parent = openScope({ name: 'parent' });
    parent.track(1, { release: noop, kind: 'parent resource' });
    const child = parent.fork({ name: 'child' });
    child.track(2, { release: noop, kind: 'child resource' });
    await sleep(OLD_ENOUGH);
    sweep();
    stop();
    const found = stale(reports);
    expect(found.map((r) => [r.scope.name, r.resources.map((x) => x.kind)])).toEqual([
      ['parent', ['parent resource']],
      ['child', ['child resource']],
    ]);
    await parent.close();
  });

  it('emits a ResourceLeakWarning with code CUSTODIAN_STALE_SCOPE under warn', async () => {
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const scope = openScope({ name: 'warned' }); // site:warned
    await sleep(OLD_ENOUGH);
    sweep();
    await flush();
    stop();
    const mine = warnings.filter((w) => w.code === 'CUSTODIAN_STALE_SCOPE');
    expect(mine).toHaveLength(1);
    expect(mine[0]?.name).toBe('ResourceLeakWarning');
    expect(mine[0]?.message).toMatch(
      new RegExp(
        `^scope "warned" \\(#${scope.id}\\) has been open for at least \\d+ ms \\(staleScopeMs is 50\\); opened at ${escape(siteOf('warned', 'openScope'))}; it holds 0 leases:$`,
      ),
    );
    configure({ leaks: 'reclaim' });
    await scope.close();
  });
});

describe('a stale scope that finally closes gets a "stale-scope-closed" follow-up', () => {
  it('reports the close with the scope and its age, then the unreleased leases as usual', async () => {
    const { reports, stop } = collectReports();
    const released: string[] = [];
    const scope = openScope({ name: 'late' });
    scope.track('conn', { release: (v) => void released.push(v), kind: 'connection' });
    await sleep(OLD_ENOUGH);
    sweep();
    await sleep(10);
    await scope.close();
    stop();
    expect(released).toEqual(['conn']);
    expect(reports.map((r) => r.type)).toEqual(['stale-scope', 'stale-scope-closed', 'unreleased']);
    const closed = reports[1] as Extract<LeakReport, { type: 'stale-scope-closed' }>;
    expect(closed.scope).toEqual((reports[0] as Stale).scope);
    // The follow-up's age is not lowered by the clock lag: it is at least the time slept.
    expect(closed.ageMs).toBeGreaterThanOrEqual(OLD_ENOUGH);
    expect(closed.ageMs).toBeGreaterThan((reports[0] as Stale).ageMs);
    expect(closed.message).toBe(`scope "late" (#${scope.id}), reported stale earlier, closed after ${Math.round(closed.ageMs)} ms`);
  });

  it('sends no follow-up for a scope that was never reported stale', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope();
    await scope.close();
    stop();
    expect(reports).toEqual([]);
  });
});

describe('staleScopeMs 0 turns stale-scope detection off', () => {
  it('never reports an old scope', async () => {
    configure({ staleScopeMs: 0 });
    const { reports, stop } = collectReports();
    const scope = openScope();
    scope.track(1, { release: noop });
    await sleep(OLD_ENOUGH);
    sweep();
    stop();
    expect(reports).toEqual([]);
    const closing = collectReports();
    await scope.close();
    closing.stop();
    expect(closing.reports.map((r) => r.type)).toEqual(['unreleased']); // no stale-scope-closed
  });
});

describe('a scope opened just now is never reported stale, whatever the sweep did before', () => {
  // Age is judged from the sweep's first sighting of a scope, so neither a lowered staleScopeMs
  // nor a coarse clock left behind by a stalled event loop can make a new scope look old.
  it('does not report a scope opened right after staleScopeMs was lowered', async () => {
    configure({ staleScopeMs: 60_000 });
    const keeper = openScope({ name: 'keeper' }); // keeps the sweep running at its slow period
    sweep(); // first sighting of keeper
    await sleep(OLD_ENOUGH);
    configure({ staleScopeMs: 50 });
    const { reports, stop } = collectReports();
    const fresh = openScope({ name: 'fresh' });
    sweep();
    stop();
    await fresh.close();
    await keeper.close();
    expect(stale(reports).map((r) => r.scope.name)).toEqual(['keeper']);
  });

  it('does not report a scope opened right after the event loop stalled', async () => {
    const keeper = openScope({ name: 'keeper' });
    sweep();
    const until = performance.now() + 4 * STALE_MS;
    while (performance.now() < until) {
      // a stall: no timer runs, the coarse clock is left far behind
    }
    const { reports, stop } = collectReports();
    const fresh = openScope({ name: 'fresh' });
    sweep();
    stop();
    await fresh.close();
    await keeper.close();
    expect(stale(reports).map((r) => r.scope.name)).toEqual(['keeper']);
  });
});

describe("the stale report follows the scope's own leak policy", () => {
  // The stale-scope report and its stale-scope-closed follow-up use the scope's `leaks` policy
  // (inherited from its parent), else the global one.
  it('emits no warning for a scope opened with leaks: "reclaim" under a global "warn"', async () => {
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const scope = openScope({ name: 'quiet', leaks: 'reclaim' });
    await sleep(OLD_ENOUGH);
    sweep();
    await scope.close();
    await flush();
    stop();
    stopReports();
    expect(reports.map((r) => [r.type, r.type === 'stale-scope' || r.type === 'stale-scope-closed' ? r.scope.id : -1])).toEqual([
      ['stale-scope', scope.id],
      ['stale-scope-closed', scope.id],
    ]);
    expect(warnings.filter((w) => w.name === 'ResourceLeakWarning')).toEqual([]);
  });

  it('emits no warning for a child of a scope opened with leaks: "reclaim" (the policy is inherited)', async () => {
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const parent = openScope({ name: 'quiet parent', leaks: 'reclaim' });
    const child = parent.fork({ name: 'quiet child' });
    await sleep(OLD_ENOUGH);
    sweep();
    await flush();
    stop();
    stopReports();
    expect(stale(reports).map((r) => r.scope.id)).toEqual([parent.id, child.id]);
    expect(warnings.filter((w) => w.name === 'ResourceLeakWarning')).toEqual([]);
    configure({ leaks: 'reclaim' });
    await parent.close();
  });

  it('warns for a scope opened with leaks: "warn" under a global "reclaim"', async () => {
    const { warnings, stop } = collectWarnings();
    const scope = openScope({ name: 'loud', leaks: 'warn' });
    await sleep(OLD_ENOUGH);
    sweep();
    await scope.close();
    await flush();
    stop();
    expect(warnings.map((w) => [w.name, w.code])).toEqual([
      ['ResourceLeakWarning', 'CUSTODIAN_STALE_SCOPE'],
      ['ResourceLeakWarning', 'CUSTODIAN_STALE_SCOPE_CLOSED'],
    ]);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
