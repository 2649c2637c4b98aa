/**
 * Garbage collection: an unscoped lease dropped unreleased has its resource destroyed and replaced
 * (a 'collected' report with the line and the pool), never handed to another borrower, since the
 * code may still be using the value; a released lease does not keep its resource; a closed pool,
 * its timers and its resources can be collected.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { channels, createPool, type LeakReport, type Pool } from '../../src/index.js';
import { collectGarbage, collectReports, flush, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, record, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();
const siteOf = sitesIn(import.meta.url);

type Collected = Extract<LeakReport, { type: 'collected' }>;

/** Acquires with no scope and drops the lease. */
async function acquireAndDrop(pool: Pool<Res>): Promise<void> {
  await pool.acquire(); // site:dropped
}

describe('an unscoped lease dropped unreleased', () => {
  it('has its resource destroyed when collected, reported with its line and pool; the next borrower gets a new one', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'gc-pool', kind: 'fake connection', max: 1 });
    const { reports, stop } = collectReports();
    await acquireAndDrop(pool);
    expect(pool.stats().borrowed).toBe(1);
    await collectGarbage(() => pool.stats().borrowed === 0);
    stop();
    expect(reports.map((r) => r.type)).toEqual(['collected']);
    expect((reports[0] as Collected).resource).toEqual({
      kind: 'fake connection',
      label: 'gc-pool',
      site: siteOf('dropped', 'acquire'),
      heldMs: expect.any(Number),
      pool: 'gc-pool',
    });
    expect(fake.destroyed).toEqual([fake.created[0]]);
    const lease = await pool.acquire();
    expect(lease.value).not.toBe(fake.created[0]);
    expect(fake.createCalls()).toBe(2);
    await lease.release();
  });

  it('never lends the value to anyone else while the code that dropped the lease still uses it', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const destroyed = record(channels.poolDestroy);
    const pool = newPool(fake.factory, { name: 'in-use', max: 1 });
    // The seed's case: `const { value } = await pool.acquire()` outside any scope, value kept in use.
    const kept = await (async () => (await pool.acquire()).value)();
    const { reports, stop } = collectReports();
    await collectGarbage(() => reports.length > 0);
    stop();
    await flush();
    expect(destroyed.messages).toMatchObject([{ pool: 'in-use', reason: 'destroyed', cause: { name: 'LeaseCollectedError' } }]);
    destroyed.stop();
    const lease = await pool.acquire();
    expect(lease.value).not.toBe(kept);
    expect(fake.destroyed).toEqual([kept]);
    await lease.release();
  });

  it('heals a full pool: a waiter gets a new resource', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1, acquireTimeoutMs: 10_000 });
    await acquireAndDrop(pool);
    const waiting = pool.acquire();
    let lease: Awaited<typeof waiting> | undefined;
    void waiting.then((l) => (lease = l));
    await collectGarbage(() => lease !== undefined);
    expect(lease?.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease?.release();
  });
});

describe('what a pool keeps alive', () => {
  it('a released lease kept by the code does not keep its resource once the pool let go of it', async () => {
    // Not fakeFactory: its lists of created and destroyed resources would keep them alive.
    let next = 0;
    const pool = newPool<Res>({ create: () => ({ id: ++next }), destroy: () => {} });
    const lease = await pool.acquire();
    const ref = new WeakRef(lease.value);
    await lease.destroy();
    await flush();
    let collected = false;
    await collectGarbage(() => (collected = ref.deref() === undefined));
    expect(collected).toBe(true);
    expect(lease.released).toBe(true);
  });

  it('a closed pool (with its evictor, held-too-long and timeout timers used) can be collected', async () => {
    const ref = await (async () => {
      const fake = fakeFactory();
      // createPool, not newPool: the test's list of pools to close would keep it alive.
      const pool = createPool(fake.factory, { max: 1, idleTimeoutMs: 20, maxLifetimeMs: 1000, leakThresholdMs: 20, acquireTimeoutMs: 50 });
      const lease = await pool.acquire();
      await pool.acquire({ timeout: 10 }).catch(() => {}); // own timer
      await pool.acquire().catch(() => {}); // the shared timer
      await sleep(30);
      await lease.release();
      await pool.close();
      return new WeakRef(pool);
    })();
    let collected = false;
    await collectGarbage(() => (collected = ref.deref() === undefined));
    expect(collected).toBe(true);
  });
});
