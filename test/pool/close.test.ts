/**
 * pool.close({ timeout }): acquires fail with PoolClosedError from the moment it is called, those
 * waiting too; it waits for borrowed leases, destroys every resource exactly once, and when the
 * timeout hits it destroys what is still out and reports who holds it. Idempotent; `await using`.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { channels, createPool, inspect, LeaseReleasedError, PoolClosedError, withScope, type LeakReport } from '../../src/index.js';
import { collectReports, collectWarnings, flush, gate, never, rejectionOf, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, manualCreate, record, settledFlag, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();
const siteOf = sitesIn(import.meta.url);

type PoolClose = Extract<LeakReport, { type: 'pool-close' }>;

/** Every created resource destroyed, each exactly once. */
function expectAllDestroyedOnce(fake: { created: Res[]; destroyed: Res[] }): void {
  expect(fake.destroyed).toHaveLength(fake.created.length);
  expect(new Set(fake.destroyed)).toEqual(new Set(fake.created));
}

describe('acquires once close() began', () => {
  it('a new acquire fails with PoolClosedError, before close() has resolved', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'closing' });
    const holder = await pool.acquire();
    const closing = pool.close();
    const error = await rejectionOf(pool.acquire());
    expect(error).toBeInstanceOf(PoolClosedError);
    expect((error as PoolClosedError).code).toBe('ERR_CUSTODIAN_POOL_CLOSED');
    expect((error as PoolClosedError).pool).toBe('closing');
    expect((error as Error).message).toBe('pool.acquire(): pool "closing" is closed; it hands out nothing more');
    await holder.release();
    await closing;
    expect(await rejectionOf(pool.acquire())).toBeInstanceOf(PoolClosedError);
    expect(await rejectionOf(withScope(() => pool.acquire()))).toBeInstanceOf(PoolClosedError);
    expect(fake.createCalls()).toBe(1);
  });

  it('an acquire of an idle resource made just before close() fails with PoolClosedError; the resource is destroyed once', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    await (await pool.acquire()).release();
    const acquiring = pool.acquire();
    const closing = pool.close();
    const outcome = await acquiring.then(
      async (lease) => (await lease.release(), 'served'),
      (error: unknown) => (error instanceof PoolClosedError ? 'closed' : error),
    );
    expect(['served', 'closed']).toContain(outcome);
    await closing;
    expectAllDestroyedOnce(fake);
  });

  it('waiting acquires fail with PoolClosedError at once; the resource then released is destroyed, not handed out', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'waiting', max: 1, acquireTimeoutMs: 10_000 });
    const holder = await pool.acquire();
    const waits = [rejectionOf(pool.acquire()), rejectionOf(withScope(() => pool.acquire()))];
    const closing = pool.close();
    const errors = await Promise.all(waits);
    for (const error of errors) {
      expect(error).toBeInstanceOf(PoolClosedError);
      expect((error as Error).message).toBe('pool "waiting" was closed while this acquire waited');
    }
    expect(holder.released).toBe(false);
    await holder.release();
    await closing;
    expect(fake.destroyedIds()).toEqual([1]);
  });
});

describe('close() waits for borrowed leases', () => {
  it('resolves only after they are released, then destroys each resource exactly once', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 3 });
    const [a, b, c] = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    await c?.release(); // one idle
    const closing = pool.close();
    const closed = settledFlag(closing);
    await sleep(30);
    expect(closed.settled).toBe(false);
    await a?.release();
    await flush();
    expect(closed.settled).toBe(false);
    await b?.release();
    await closing;
    expectAllDestroyedOnce(fake);
    expect(fake.created).toHaveLength(3);
  });

  it('waits for a lease its scope gives back', async () => {
    allowLeaks(); // the scope reclaims the lease
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const inside = gate();
    const task = withScope(async () => {
      await pool.acquire();
      await inside.promise;
    });
    await flush();
    const closing = pool.close();
    const closed = settledFlag(closing);
    await sleep(20);
    expect(closed.settled).toBe(false);
    inside.open();
    await task;
    await closing;
    expect(fake.destroyedIds()).toEqual([1]);
  });

  it('with timeout 0 waits for as long as it takes', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const lease = await pool.acquire();
    const { reports, stop } = collectReports();
    const closing = pool.close({ timeout: 0 });
    const closed = settledFlag(closing);
    await sleep(60);
    expect(closed.settled).toBe(false);
    await lease.release();
    await closing;
    stop();
    expect(reports).toEqual([]);
    expect(fake.destroyedIds()).toEqual([1]);
  });

  it('destroys idle and min resources and does not refill min', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { min: 2, max: 4 });
    const lease = await pool.acquire();
    await lease.release();
    await pool.close();
    await sleep(20);
    expectAllDestroyedOnce(fake);
    expect(fake.created).toHaveLength(2);
  });

  it('stats() of a closed pool count nothing: no resource is available once all are destroyed', async () => {
    const pool = newPool(fakeFactory().factory, { max: 4 });
    const leases = await Promise.all([pool.acquire(), pool.acquire()]);
    for (const lease of leases) await lease.release();
    expect(pool.stats()).toMatchObject({ size: 2, available: 2 });
    await pool.close();
    expect(pool.stats()).toEqual({ size: 0, available: 0, borrowed: 0, pending: 0, destroying: 0, min: 0, max: 4 });
  });

  it('waits for a reset under way, then destroys the resource', async () => {
    const resetDone = gate();
    const fake = fakeFactory(() => ({ reset: () => resetDone.promise }));
    const pool = newPool(fake.factory);
    const lease = await pool.acquire();
    const released = lease.release();
    const closing = pool.close();
    const closed = settledFlag(closing);
    await sleep(20);
    expect(closed.settled).toBe(false);
    resetDone.open();
    await released;
    await closing;
    expect(fake.destroyedIds()).toEqual([1]);
  });
});

describe('close({ timeout }) with leases still out', () => {
  it('reports them in a pool-close report with their sites, and destroys them', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'stuck', kind: 'fake connection', max: 2 });
    const kept = await pool.acquire(); // site:kept
    const idle = await pool.acquire();
    await idle.release();
    const { reports, stop } = collectReports();
    await pool.close({ timeout: 30 });
    stop();
    expect(reports.map((r) => r.type)).toEqual(['pool-close']);
    const report = reports[0] as PoolClose;
    expect(report.pool).toBe('stuck');
    expect(report.timeoutMs).toBe(30);
    expect(report.resources).toEqual([
      { kind: 'fake connection', label: 'stuck', site: siteOf('kept', 'acquire'), heldMs: expect.any(Number), pool: 'stuck' },
    ]);
    expect(report.resources[0]?.heldMs).toBeGreaterThanOrEqual(20);
    expect(report.message.split('\n')[0]).toBe(
      'pool "stuck" closed with 1 fake connection still borrowed after waiting 30 ms; the borrowed ones were destroyed',
    );
    expect(report.message).toContain(`acquired at ${siteOf('kept', 'acquire')}`);
    expectAllDestroyedOnce(fake);
    expect(kept.released).toBe(true);
    expect(() => kept.value).toThrow(LeaseReleasedError);
  });

  it("publishes the forced destroys with reason closed and a PoolClosedError cause, not as a holder's destroy", async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'forced' });
    await pool.acquire();
    const destroys = record<{ reason: string; cause?: unknown }>(channels.poolDestroy);
    await pool.close({ timeout: 20 });
    destroys.stop();
    expect(destroys.messages.map((m) => m.reason)).toEqual(['closed']);
    expect(destroys.messages[0]?.cause).toBeInstanceOf(PoolClosedError);
  });

  it("the holder's later release() is harmless: resolves, destroys nothing twice, returns nothing to the pool", async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const kept = await pool.acquire();
    await pool.close({ timeout: 20 });
    expect(fake.destroyedIds()).toEqual([1]);
    await expect(kept.release()).resolves.toBeUndefined();
    await expect(kept.destroy(new Error('late'))).resolves.toBeUndefined();
    await flush();
    expect(fake.destroyedIds()).toEqual([1]);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0 });
  });

  it("a lease destroyed by the close is no longer its scope's: the scope end neither releases it again nor reports it", async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const { reports, stop } = collectReports();
    const closed = gate();
    await withScope(async () => {
      await pool.acquire(); // site:scoped
      void pool.close({ timeout: 20 }).then(() => closed.open());
      await closed.promise;
    });
    stop();
    expect(reports.map((r) => r.type)).toEqual(['pool-close']);
    expect((reports[0] as PoolClose).resources[0]?.site).toBe(siteOf('scoped', 'acquire'));
    expect(fake.destroyedIds()).toEqual([1]);
  });

  it('reports a resource whose reset hangs, and does not hang itself', async () => {
    const fake = fakeFactory(() => ({ reset: () => never() }));
    const pool = newPool(fake.factory, { name: 'hung-reset' });
    const lease = await pool.acquire();
    void lease.release(); // never settles: its reset hangs
    const { reports, stop } = collectReports();
    await pool.close({ timeout: 20 });
    stop();
    expect(reports.map((r) => r.type)).toEqual(['pool-close']);
    const report = reports[0] as PoolClose;
    expect(report.resources).toEqual([]);
    expect(report.message).toContain('and 1 pooled resource whose reset has not finished');
  });

  it('a create that never settles: close() resolves after its timeout with a CUSTODIAN_POOL_CLOSE_HUNG warning, and blames no lease', async () => {
    const fake = fakeFactory(() => ({ create: () => never() }));
    const pool = newPool(fake.factory, { name: 'hung-create', acquireTimeoutMs: 10_000 });
    const waiting = rejectionOf(pool.acquire());
    await flush();
    const { reports, stop } = collectReports();
    const { warnings, stop: stopWarnings } = collectWarnings();
    const closed = settledFlag(pool.close({ timeout: 30 }));
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    await sleep(200);
    await flush();
    stop();
    stopWarnings();
    expect(closed.settled).toBe(true);
    const hung = warnings.filter((w) => w.code === 'CUSTODIAN_POOL_CLOSE_HUNG');
    expect(hung).toHaveLength(1);
    expect(hung[0]?.message).toContain('pool "hung-create": close() stopped waiting after 30 ms for a create or destroy');
    // Nothing was borrowed: a pool-close report ("closed with 0 ... still borrowed ... they were destroyed") blames no one real.
    expect(reports.filter((r) => r.type === 'pool-close')).toEqual([]);
  });

  it('a destroy that never settles: close() resolves after its timeout with a CUSTODIAN_POOL_CLOSE_HUNG warning', async () => {
    const fake = fakeFactory(() => ({ destroy: () => never() }));
    const pool = newPool(fake.factory, { name: 'hung-destroy' });
    await (await pool.acquire()).release();
    const { warnings, stop } = collectWarnings();
    const closed = settledFlag(pool.close({ timeout: 30 }));
    await sleep(200);
    await flush();
    stop();
    expect(closed.settled).toBe(true);
    expect(warnings.map((w) => w.code)).toEqual(['CUSTODIAN_POOL_CLOSE_HUNG']);
  });
});

describe('close() while a resource is on its way to a waiter', () => {
  it('a create that finishes after close(): the waiter got PoolClosedError, the resource is destroyed', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory);
    const waiting = rejectionOf(pool.acquire());
    await flush();
    const closing = pool.close();
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    created.pending[0]?.succeed();
    await closing;
    expectAllDestroyedOnce(fake);
  });

  it('a create that fails after close(): close() resolves, nothing to destroy', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory);
    const waiting = rejectionOf(pool.acquire());
    await flush();
    const closed = settledFlag(pool.close({ timeout: 5000 }));
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    created.pending[0]?.fail(new Error('refused'));
    await sleep(20);
    expect(closed.settled).toBe(true);
    expect(fake.destroyed).toEqual([]);
  });

  it('a validation that passes after close(): the resource is destroyed and close() resolves', async () => {
    const verdict = gate<boolean>();
    let validating = false;
    const fake = fakeFactory(() => ({ validate: () => ((validating = true), verdict.promise) }));
    const pool = newPool(fake.factory);
    await (await pool.acquire()).release();
    const waiting = rejectionOf(pool.acquire());
    await flush();
    expect(validating).toBe(true);
    const closed = settledFlag(pool.close({ timeout: 5000 }));
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    verdict.open(true);
    await sleep(20);
    expect(closed.settled).toBe(true);
    expectAllDestroyedOnce(fake);
  });

  it('a validation that fails after close(): the resource is destroyed and close() resolves without waiting for its timeout', async () => {
    const verdict = gate<boolean>();
    let validating = false;
    const fake = fakeFactory(() => ({ validate: () => ((validating = true), verdict.promise) }));
    const pool = newPool(fake.factory);
    await (await pool.acquire()).release();
    const waiting = rejectionOf(pool.acquire());
    await flush();
    expect(validating).toBe(true);
    const { reports, stop } = collectReports();
    const closed = settledFlag(pool.close({ timeout: 5000 }));
    expect(await waiting).toBeInstanceOf(PoolClosedError);
    verdict.open(false);
    await sleep(50);
    stop();
    expect(closed.settled).toBe(true);
    expect(reports).toEqual([]);
    expectAllDestroyedOnce(fake);
  });
});

describe('close() is idempotent, and await using closes', () => {
  it('returns the same promise when called twice (and from Symbol.asyncDispose)', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    await (await pool.acquire()).release();
    const first = pool.close();
    expect(pool.close()).toBe(first);
    expect(pool.close({ timeout: 5 })).toBe(first);
    expect(pool[Symbol.asyncDispose]()).toBe(first);
    await first;
    expect(pool.close()).toBe(first);
    expect(fake.destroyedIds()).toEqual([1]);
  });

  it('`await using pool = createPool(...)` closes it at the end of the block', async () => {
    const fake = fakeFactory();
    let escaped: ReturnType<typeof createPool<Res>> | undefined;
    {
      await using pool = createPool(fake.factory, { name: 'using-pool' });
      escaped = pool;
      await (await pool.acquire()).release();
      expect(inspect().pools.map((p) => p.name)).toContain('using-pool');
    }
    expect(inspect().pools.map((p) => p.name)).not.toContain('using-pool');
    expect(fake.destroyedIds()).toEqual([1]);
    expect(await rejectionOf(escaped.acquire())).toBeInstanceOf(PoolClosedError);
  });

  it('leaves inspect().pools at once', async () => {
    const pool = newPool(fakeFactory().factory, { name: 'listed' });
    const lease = await pool.acquire();
    expect(inspect().pools.map((p) => p.name)).toContain('listed');
    const closing = pool.close();
    expect(inspect().pools.map((p) => p.name)).not.toContain('listed');
    await lease.release();
    await closing;
  });
});
