/**
 * Pooled leases belong to the scope that acquired them: one never released is given back when the
 * scope ends and reported with the acquiring line and the pool; `await using` gives it back at the
 * end of the block; the pool's leakThresholdMs reports a lease held too long, then when it returns.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { configure, openScope, withScope, type Lease, type LeakReport } from '../../src/index.js';
import { collectReports, collectWarnings, flush, never, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();
const siteOf = sitesIn(import.meta.url);

type Unreleased = Extract<LeakReport, { type: 'unreleased' }>;
type HeldTooLong = Extract<LeakReport, { type: 'held-too-long' }>;
type ReturnedLate = Extract<LeakReport, { type: 'returned-late' }>;

describe('a lease acquired in a scope and never released', () => {
  it('is given back when the scope ends, and the next acquire reuses the resource', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'leaky', kind: 'fake connection' });
    let held: Lease<Res> | undefined;
    await withScope(async () => {
      held = await pool.acquire();
      expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1, available: 0 });
    });
    expect(held?.released).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 0, available: 1, pending: 0 });
    const again = await pool.acquire();
    expect(again.value).toBe(fake.created[0]);
    expect(fake.createCalls()).toBe(1);
    expect(fake.destroyed).toEqual([]);
    await again.release();
  });

  it('is reported as "unreleased" with the acquiring line, the pool name, kind and label', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'orders-db', kind: 'fake connection' });
    const { reports, stop } = collectReports();
    await withScope(
      async () => {
        await pool.acquire(); // site:leak
      },
      { name: 'GET /orders' },
    );
    stop();
    expect(reports.map((r) => r.type)).toEqual(['unreleased']);
    const report = reports[0] as Unreleased;
    expect(report.scope.name).toBe('GET /orders');
    expect(report.cancelled).toBe(false);
    expect(report.resources).toHaveLength(1);
    expect(report.resources[0]).toEqual({
      kind: 'fake connection',
      label: 'orders-db',
      site: siteOf('leak', 'acquire'),
      heldMs: expect.any(Number),
      pool: 'orders-db',
    });
    expect(report.message).toContain(`fake connection (orders-db)  x1  acquired at ${siteOf('leak', 'acquire')}`);
  });

  it('reports the line of the pool.use() call for a lease a use() callback never gets to release', async () => {
    allowLeaks();
    const pool = newPool(fakeFactory().factory, { name: 'use-site' });
    const { reports, stop } = collectReports();
    const scope = openScope();
    void scope.run(() => pool.use(() => never())); // site:use
    await flush();
    expect(pool.stats().borrowed).toBe(1);
    await scope.close();
    stop();
    const unreleased = reports.filter((r): r is Unreleased => r.type === 'unreleased');
    expect(unreleased).toHaveLength(1);
    expect(unreleased[0]?.resources[0]).toMatchObject({ site: siteOf('use', 'use'), pool: 'use-site' });
    expect(pool.stats().borrowed).toBe(0);
  });

  it('gives back every lease of the scope, each reported, none destroyed', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'many', max: 3 });
    const { reports, stop } = collectReports();
    await withScope(async () => {
      await pool.acquire(); // site:first
      await pool.acquire(); // site:second
      await pool.acquire(); // site:third
      expect(pool.stats().borrowed).toBe(3);
    });
    stop();
    expect(pool.stats()).toMatchObject({ size: 3, borrowed: 0, available: 3 });
    expect(fake.destroyed).toEqual([]);
    const sites = (reports[0] as Unreleased).resources.map((r) => r.site);
    expect(sites).toEqual([siteOf('third', 'acquire'), siteOf('second', 'acquire'), siteOf('first', 'acquire')]);
  });

  it('is given back by a scope closed with close() (openScope), too', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'open-scope' });
    const scope = openScope();
    const lease = await scope.run(() => pool.acquire());
    expect(pool.stats().borrowed).toBe(1);
    await scope.close();
    expect(lease.released).toBe(true);
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
  });

  it('emits a ResourceLeakWarning (CUSTODIAN_UNRELEASED) under the default "warn" policy', async () => {
    allowLeaks();
    configure({ leaks: 'warn' });
    const pool = newPool(fakeFactory().factory, { name: 'warned', kind: 'fake connection' });
    const { warnings, stop } = collectWarnings();
    await withScope(async () => {
      await pool.acquire();
    });
    await flush();
    stop();
    const leakWarnings = warnings.filter((w) => w.name === 'ResourceLeakWarning');
    expect(leakWarnings.map((w) => w.code)).toEqual(['CUSTODIAN_UNRELEASED']);
    expect(leakWarnings[0]?.detail).toContain('fake connection (warned)');
  });

  it('is not reported when released in the scope', async () => {
    const pool = newPool(fakeFactory().factory);
    const { reports, stop } = collectReports();
    await withScope(async () => {
      const lease = await pool.acquire();
      await lease.release();
    });
    stop();
    expect(reports).toEqual([]);
  });
});

describe('await using', () => {
  it('gives the lease back at the end of the block, not at the end of the scope', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const { reports, stop } = collectReports();
    let inside: Lease<Res> | undefined;
    await withScope(async () => {
      {
        await using lease = await pool.acquire();
        inside = lease;
        expect(pool.stats().borrowed).toBe(1);
      }
      expect(inside?.released).toBe(true);
      expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
      {
        await using again = await pool.acquire();
        expect(again.value).toBe(fake.created[0]);
      }
    });
    stop();
    expect(reports).toEqual([]);
    expect(fake.createCalls()).toBe(1);
  });

  it('gives it back when the block throws', async () => {
    const pool = newPool(fakeFactory().factory);
    const boom = new Error('boom');
    const run = async () => {
      await using lease = await pool.acquire();
      expect(lease.released).toBe(false);
      throw boom;
    };
    await expect(run()).rejects.toBe(boom);
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
  });

  it('works outside any scope', async () => {
    const pool = newPool(fakeFactory().factory);
    {
      await using lease = await pool.acquire();
      expect(lease.released).toBe(false);
      expect(pool.stats().borrowed).toBe(1);
    }
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
  });

  it('pool.use() gives the lease back when fn returns and when it throws', async () => {
    const pool = newPool(fakeFactory().factory);
    expect(await pool.use((r) => r.id)).toBe(1);
    expect(pool.stats().borrowed).toBe(0);
    const boom = new Error('boom');
    await expect(
      pool.use(() => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1, size: 1 });
  });
});

describe("the pool's leakThresholdMs", () => {
  const THRESHOLD_MS = 30;

  it('reports a lease held longer as "held-too-long", with its site and pool, then "returned-late"', async () => {
    const pool = newPool(fakeFactory().factory, { name: 'slow-db', kind: 'fake connection', leakThresholdMs: THRESHOLD_MS });
    const { reports, stop } = collectReports();
    const lease = await pool.acquire(); // site:held
    await sleep(3 * THRESHOLD_MS);
    expect(reports.map((r) => r.type)).toEqual(['held-too-long']);
    await sleep(10);
    await lease.release();
    stop();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    const held = reports[0] as HeldTooLong;
    expect(held.thresholdMs).toBe(THRESHOLD_MS);
    expect(held.resource).toEqual({
      kind: 'fake connection',
      label: 'slow-db',
      site: siteOf('held', 'acquire'),
      heldMs: expect.any(Number),
      pool: 'slow-db',
    });
    expect(held.resource.heldMs).toBeGreaterThanOrEqual(THRESHOLD_MS);
    const late = reports[1] as ReturnedLate;
    expect(late.resource).toMatchObject({ site: siteOf('held', 'acquire'), pool: 'slow-db' });
    expect(late.resource.heldMs).toBeGreaterThanOrEqual(3 * THRESHOLD_MS + 5);
    expect(late.message).toBe(
      `fake connection (slow-db) acquired at ${siteOf('held', 'acquire')} was returned after ${Math.round(late.resource.heldMs)} ms (reported earlier as held longer than leakThresholdMs ${THRESHOLD_MS})`,
    );
  });

  it('applies even when the global leakThresholdMs is off, and to leases of a scope', async () => {
    configure({ leakThresholdMs: 0 });
    const pool = newPool(fakeFactory().factory, { name: 'scoped-slow', leakThresholdMs: THRESHOLD_MS });
    const { reports, stop } = collectReports();
    await withScope(async () => {
      const lease = await pool.acquire(); // site:scoped
      await sleep(3 * THRESHOLD_MS);
      await lease.release();
    });
    stop();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    expect((reports[0] as HeldTooLong).resource).toMatchObject({ site: siteOf('scoped', 'acquire'), pool: 'scoped-slow' });
  });

  it('reports once per lease, however long it is held, and each lease of its own', async () => {
    const pool = newPool(fakeFactory().factory, { name: 'two-slow', max: 2, leakThresholdMs: THRESHOLD_MS });
    const { reports, stop } = collectReports();
    const a = await pool.acquire();
    const b = await pool.acquire();
    await sleep(5 * THRESHOLD_MS);
    await a.release();
    await b.release();
    stop();
    expect(reports.map((r) => r.type).sort()).toEqual(['held-too-long', 'held-too-long', 'returned-late', 'returned-late']);
  });

  it('keeps watching after a quiet spell: a lease borrowed after every earlier one came back is still reported', async () => {
    const pool = newPool(fakeFactory().factory, { name: 'quiet-then-slow', leakThresholdMs: THRESHOLD_MS });
    const { reports, stop } = collectReports();
    await (await pool.acquire()).release();
    await sleep(3 * THRESHOLD_MS); // nothing borrowed: the pool's watch timer stops
    const lease = await pool.acquire(); // site:after-quiet
    await sleep(3 * THRESHOLD_MS);
    await lease.release();
    stop();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    expect((reports[0] as HeldTooLong).resource.site).toBe(siteOf('after-quiet', 'acquire'));
  });

  it('does not report a lease released within the threshold', async () => {
    const pool = newPool(fakeFactory().factory, { leakThresholdMs: 50 });
    const { reports, stop } = collectReports();
    for (let i = 0; i < 3; i++) {
      const lease = await pool.acquire();
      await sleep(5);
      await lease.release();
    }
    await sleep(100);
    stop();
    expect(reports).toEqual([]);
  });

  it('uses the global leakThresholdMs when the pool sets none', async () => {
    configure({ leakThresholdMs: THRESHOLD_MS });
    const pool = newPool(fakeFactory().factory, { name: 'global-threshold' });
    const { reports, stop } = collectReports();
    const lease = await pool.acquire(); // site:global
    await sleep(4 * THRESHOLD_MS);
    await lease.release();
    stop();
    expect(reports.map((r) => r.type)).toEqual(['held-too-long', 'returned-late']);
    expect((reports[0] as HeldTooLong).resource).toMatchObject({ site: siteOf('global', 'acquire'), pool: 'global-threshold' });
  });
});
