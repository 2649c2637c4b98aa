/**
 * Leak kind 4, the GC backstop: a lease acquired with no scope whose handle became garbage while
 * still held is reported ("collected") and its resource is destroyed (never given back for reuse:
 * the code may still be using the value), so a pool heals with a new one. Needs `--expose-gc`
 * (vitest.config.ts passes it to the forks).
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { configure, currentScope, openScope, track, type LeakReport } from '../../src/index.js';
import {
  allowLeaksInEveryTest,
  collectReports,
  collectWarnings,
  flush,
  sleep,
  useCleanCustodian,
  sitesIn,
  collectGarbage,
} from '../helpers.js';

useCleanCustodian({ leaks: 'reclaim' });
allowLeaksInEveryTest();
beforeEach(flush);

const siteOf = sitesIn(import.meta.url);

interface Connection {
  readonly id: number;
}

/** Acquires an unscoped lease and drops the handle: nothing but custodian knows about it now. */
function acquireAndDrop(given: Connection[], id: number): void {
  track<Connection>({ id }, { release: (c) => void given.push(c), kind: 'pooled connection', label: 'main' }); // site:dropped
}

describe('an unscoped lease whose handle is garbage-collected unreleased is reported and destroyed', () => {
  it('reports "collected" with the site and calls release once with the value when there is no destroy', async () => {
    expect(currentScope()).toBeUndefined();
    const { reports, stop } = collectReports();
    const given: Connection[] = [];
    acquireAndDrop(given, 7);
    await collectGarbage(() => reports.length > 0 && given.length > 0);
    await sleep(10);
    stop();
    expect(given).toEqual([{ id: 7 }]);
    expect(reports.map((r) => r.type)).toEqual(['collected']);
    const report = reports[0] as Extract<LeakReport, { type: 'collected' }>;
    expect(report.resource).toEqual({
      kind: 'pooled connection',
      label: 'main',
      site: siteOf('dropped', 'track'),
      heldMs: expect.any(Number),
    });
    expect(report.message.split('\n')).toEqual([
      `pooled connection (main) acquired at ${siteOf('dropped', 'track')} was garbage-collected without being released, after ${Math.round(report.resource.heldMs)} ms; custodian destroyed it`,
      '  Its lease handle was dropped, but its value may still be in use, so it was not handed to anyone else. Keep the lease and release it (`await using lease = ...` or lease.release() in finally), or acquire it inside a scope so that the scope gives it back.',
    ]);
  });

  it('calls destroy, not release, when there is one, with a reason that says why, even while the value lives on', async () => {
    const released: Connection[] = [];
    const destroyed: { value: Connection; reason: unknown }[] = [];
    const kept: Connection = { id: 9 }; // the code still uses the value; only the lease was dropped
    const options = {
      release: (c: Connection) => void released.push(c),
      destroy: (value: Connection, reason: unknown) => void destroyed.push({ value, reason }),
      kind: 'connection',
    };
    (() => void track(kept, options))(); // site:kept
    await collectGarbage(() => destroyed.length > 0);
    expect(released).toEqual([]);
    expect(destroyed).toHaveLength(1);
    expect(destroyed[0]?.value).toBe(kept);
    expect(destroyed[0]?.reason).toMatchObject({
      name: 'LeaseCollectedError',
      message: `connection acquired at ${siteOf('kept', 'track')} was destroyed: its lease was garbage-collected unreleased`,
    });
  });

  it('gets rid of every dropped lease, each once (the pool heals)', async () => {
    const { reports, stop } = collectReports();
    const given: Connection[] = [];
    for (let id = 1; id <= 5; id++) acquireAndDrop(given, id);
    await collectGarbage(() => given.length >= 5);
    await sleep(10);
    stop();
    expect(given.map((c) => c.id).sort()).toEqual([1, 2, 3, 4, 5]);
    expect(reports.filter((r) => r.type === 'collected')).toHaveLength(5);
  });

  it('emits a ResourceLeakWarning with code CUSTODIAN_COLLECTED under warn', async () => {
    configure({ leaks: 'warn' });
    const { warnings, stop } = collectWarnings();
    const given: Connection[] = [];
    acquireAndDrop(given, 1);
    await collectGarbage(() => warnings.some((w) => w.code === 'CUSTODIAN_COLLECTED'));
    stop();
    expect(given).toHaveLength(1);
    expect(warnings.filter((w) => w.code === 'CUSTODIAN_COLLECTED').map((w) => w.name)).toEqual(['ResourceLeakWarning']);
  });
});

describe('a released unscoped lease is not reported when collected', () => {
  it('reports nothing and does not release again', async () => {
    const { reports, stop } = collectReports();
    const given: Connection[] = [];
    await (async () => {
      const lease = track<Connection>({ id: 1 }, { release: (c) => void given.push(c), kind: 'pooled connection' });
      await lease.release();
    })();
    await collectGarbage(() => false, 5);
    stop();
    expect(given).toEqual([{ id: 1 }]);
    expect(reports).toEqual([]);
  });
});

describe('a lease held by an open scope is not collected, even if the code dropped its handle', () => {
  it('is not given back by the GC while the scope is open; the scope reclaims it at close', async () => {
    const { reports, stop } = collectReports();
    const given: Connection[] = [];
    const scope = openScope({ name: 'holder' });
    scope.run(() => acquireAndDrop(given, 3));
    await collectGarbage(() => given.length > 0, 5);
    expect(given).toEqual([]);
    expect(reports).toEqual([]);
    await scope.close();
    stop();
    expect(given).toEqual([{ id: 3 }]);
    expect(reports).toMatchObject([
      { type: 'unreleased', scope: { name: 'holder' }, resources: [{ kind: 'pooled connection', site: siteOf('dropped', 'track') }] },
    ]);
  });
});

describe('a held unscoped lease whose handle is still referenced is not collected', () => {
  it('stays held through GC', async () => {
    const { reports, stop } = collectReports();
    const given: Connection[] = [];
    const lease = track<Connection>({ id: 9 }, { release: (c) => void given.push(c) });
    await collectGarbage(() => given.length > 0, 5);
    expect(given).toEqual([]);
    expect(lease.released).toBe(false);
    expect(lease.value).toEqual({ id: 9 });
    await lease.release();
    stop();
    expect(given).toEqual([{ id: 9 }]);
    expect(reports).toEqual([]);
  });
});
