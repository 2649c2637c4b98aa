/**
 * What a pool tells the outside: its events on node:diagnostics_channel (acquire, release, create,
 * destroy, timeout, leak), stats() at known points, and inspect().pools.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { channels, inspect, PoolTimeoutError, track, withScope, type LeakReport } from '../../src/index.js';
import { flush, gate, rejectionOf, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, manualCreate, record, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

/** Records `channel`, keeping only the messages about the pool named `pool`. */
function recordPool<M extends { pool: string }>(channel: string, pool: string) {
  const recorder = record<M>(channel);
  return {
    get messages() {
      return recorder.messages.filter((m) => m.pool === pool);
    },
    stop: recorder.stop,
  };
}

describe('custodian:pool:acquire and custodian:pool:release', () => {
  it('publishes { pool, waitMs } per hand-out and { pool, heldMs } per release', async () => {
    const acquires = recordPool<{ pool: string; waitMs: number }>(channels.poolAcquire, 'ev-acq');
    const releases = recordPool<{ pool: string; heldMs: number }>(channels.poolRelease, 'ev-acq');
    const pool = newPool(fakeFactory().factory, { name: 'ev-acq', max: 1 });
    const first = await pool.acquire();
    const waiting = pool.acquire();
    await sleep(30);
    await first.release();
    const second = await waiting;
    await second.release();
    acquires.stop();
    releases.stop();
    expect(acquires.messages).toEqual([
      { pool: 'ev-acq', waitMs: expect.any(Number) },
      { pool: 'ev-acq', waitMs: expect.any(Number) },
    ]);
    expect(acquires.messages[0]?.waitMs).toBeGreaterThanOrEqual(0);
    expect(acquires.messages[1]?.waitMs).toBeGreaterThanOrEqual(25);
    expect(releases.messages).toEqual([
      { pool: 'ev-acq', heldMs: expect.any(Number) },
      { pool: 'ev-acq', heldMs: expect.any(Number) },
    ]);
    expect(releases.messages[0]?.heldMs).toBeGreaterThanOrEqual(25);
  });

  it('publishes a release for a lease reclaimed by its scope, and for lease.destroy()', async () => {
    allowLeaks();
    const releases = recordPool(channels.poolRelease, 'ev-reclaim');
    const pool = newPool(fakeFactory().factory, { name: 'ev-reclaim' });
    await withScope(async () => {
      await pool.acquire();
    });
    await (await pool.acquire()).destroy(new Error('broken'));
    releases.stop();
    expect(releases.messages).toHaveLength(2);
  });

  it('publishes nothing for a second release', async () => {
    const releases = recordPool(channels.poolRelease, 'ev-twice');
    const pool = newPool(fakeFactory().factory, { name: 'ev-twice' });
    const lease = await pool.acquire();
    await lease.release();
    await lease.release();
    releases.stop();
    expect(releases.messages).toHaveLength(1);
  });
});

describe('custodian:pool:create', () => {
  it('publishes { pool, durationMs } for a create that worked and { pool, durationMs, error } for one that failed', async () => {
    const creates = recordPool<Record<string, unknown> & { pool: string }>(channels.poolCreate, 'ev-create');
    const refused = new Error('refused');
    let fail = false;
    const fake = fakeFactory((f) => ({ create: () => (fail ? Promise.reject(refused) : f.make()) }));
    const pool = newPool(fake.factory, { name: 'ev-create' });
    await (await pool.acquire()).release();
    fail = true;
    const holder = await pool.acquire(); // the idle one
    const error = await rejectionOf(pool.acquire({ timeout: 30 })); // a create fails; holder may come back
    expect(error).toBeInstanceOf(PoolTimeoutError);
    await holder.release();
    creates.stop();
    expect(creates.messages).toEqual([
      { pool: 'ev-create', durationMs: expect.any(Number) },
      { pool: 'ev-create', durationMs: expect.any(Number), error: refused },
    ]);
    expect(Object.keys(creates.messages[0] ?? {})).not.toContain('error');
  });

  it('measures durationMs from the start of the create', async () => {
    const creates = recordPool<{ pool: string; durationMs: number }>(channels.poolCreate, 'ev-slow-create');
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory, { name: 'ev-slow-create' });
    const waiting = pool.acquire();
    await sleep(30);
    created.pending[0]?.succeed();
    await (await waiting).release();
    creates.stop();
    expect(creates.messages).toHaveLength(1);
    expect(creates.messages[0]?.durationMs).toBeGreaterThanOrEqual(25);
  });
});

describe('custodian:pool:destroy', () => {
  type Destroy = { pool: string; reason: string; durationMs: number; cause?: unknown; error?: unknown };

  it('publishes { pool, reason, durationMs } with the reason, the cause of a lease.destroy() and the error of a failed destroy', async () => {
    const destroys = recordPool<Destroy>(channels.poolDestroy, 'ev-destroy');
    const destroyError = new Error('close failed');
    const fake = fakeFactory((f) => ({
      destroy: (r: Res) => {
        f.destroyed.push(r);
        if (r.id === 2) throw destroyError;
      },
    }));
    const pool = newPool(fake.factory, { name: 'ev-destroy', max: 2 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const cause = new Error('connection reset');
    await a.destroy(cause);
    await b.destroy();
    await pool.close();
    destroys.stop();
    expect(destroys.messages).toEqual([
      { pool: 'ev-destroy', reason: 'destroyed', durationMs: expect.any(Number), cause },
      { pool: 'ev-destroy', reason: 'destroyed', durationMs: expect.any(Number), error: destroyError },
    ]);
  });

  it("says 'closed' for resources destroyed by close()", async () => {
    const destroys = recordPool<Destroy>(channels.poolDestroy, 'ev-closed');
    const pool = newPool(fakeFactory().factory, { name: 'ev-closed', max: 2 });
    const leases = await Promise.all([pool.acquire(), pool.acquire()]);
    await leases[0]?.release();
    const closing = pool.close();
    await leases[1]?.release();
    await closing;
    destroys.stop();
    expect(destroys.messages.map((m) => m.reason)).toEqual(['closed', 'closed']);
  });

  it('measures the destroy', async () => {
    const destroys = recordPool<Destroy>(channels.poolDestroy, 'ev-slow-destroy');
    const pool = newPool(fakeFactory(() => ({ destroy: () => sleep(30) })).factory, { name: 'ev-slow-destroy' });
    await (await pool.acquire()).destroy();
    await sleep(50);
    destroys.stop();
    expect(destroys.messages).toHaveLength(1);
    expect(destroys.messages[0]?.durationMs).toBeGreaterThanOrEqual(25);
  });
});

describe('custodian:pool:timeout', () => {
  it('publishes { pool, waitMs, stats } with the stats when the acquire gave up', async () => {
    const timeouts = recordPool<{ pool: string; waitMs: number; stats: unknown }>(channels.poolTimeout, 'ev-timeout');
    const pool = newPool(fakeFactory().factory, { name: 'ev-timeout', max: 1 });
    const holder = await pool.acquire();
    const other = pool.acquire();
    const error = await rejectionOf(pool.acquire({ timeout: 20 }));
    timeouts.stop();
    expect(timeouts.messages).toEqual([
      {
        pool: 'ev-timeout',
        waitMs: (error as PoolTimeoutError).waitMs,
        stats: { size: 1, available: 0, borrowed: 1, pending: 1, destroying: 0, min: 0, max: 1 },
      },
    ]);
    await holder.release();
    await (await other).release();
  });
});

describe('custodian:pool:leak', () => {
  it('publishes { pool, report } for unreleased, held-too-long, returned-late and pool-close reports about the pool', async () => {
    allowLeaks();
    const leaks = recordPool<{ pool: string; report: LeakReport }>(channels.poolLeak, 'ev-leak');
    const pool = newPool(fakeFactory().factory, { name: 'ev-leak', leakThresholdMs: 20 });
    await withScope(async () => {
      await pool.acquire();
    });
    const slow = await pool.acquire();
    await sleep(60);
    await slow.release();
    await pool.acquire();
    await pool.close({ timeout: 10 });
    leaks.stop();
    expect(leaks.messages.map((m) => m.report.type)).toEqual(['unreleased', 'held-too-long', 'returned-late', 'pool-close']);
  });

  it('publishes nothing for leaks of other resources, and once per pool for a report naming two pools', async () => {
    allowLeaks();
    const all = record<{ pool: string; report: LeakReport }>(channels.poolLeak);
    const a = newPool(fakeFactory().factory, { name: 'ev-leak-a' });
    const b = newPool(fakeFactory().factory, { name: 'ev-leak-b' });
    await withScope(async () => {
      track('not pooled', { release: () => {} });
    });
    await withScope(async () => {
      await a.acquire();
      await a.acquire();
      await b.acquire();
    });
    all.stop();
    const mine = all.messages.filter((m) => m.pool.startsWith('ev-leak-'));
    expect(mine.map((m) => m.pool).sort()).toEqual(['ev-leak-a', 'ev-leak-b']);
    expect(mine[0]?.report).toBe(mine[1]?.report);
  });
});

describe('stats()', () => {
  it('counts size, available, borrowed and pending at each step', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory, { max: 2, min: 0 });
    const at = () => pool.stats();
    expect(at()).toEqual({ size: 0, available: 0, borrowed: 0, pending: 0, destroying: 0, min: 0, max: 2 });

    const first = pool.acquire();
    await flush();
    expect(at()).toMatchObject({ size: 1, available: 0, borrowed: 0, pending: 1 }); // being created
    created.pending[0]?.succeed();
    const a = await first;
    expect(at()).toMatchObject({ size: 1, available: 0, borrowed: 1, pending: 0 });

    const second = pool.acquire();
    await flush();
    created.pending[0]?.succeed();
    const b = await second;
    expect(at()).toMatchObject({ size: 2, available: 0, borrowed: 2, pending: 0 });

    const third = pool.acquire();
    await flush();
    expect(at()).toMatchObject({ size: 2, available: 0, borrowed: 2, pending: 1 });
    expect(created.pending).toHaveLength(0); // at max: nothing more is created

    await a.release(); // straight to the waiter
    const c = await third;
    expect(at()).toMatchObject({ size: 2, available: 0, borrowed: 2, pending: 0 });

    await b.release();
    expect(at()).toMatchObject({ size: 2, available: 1, borrowed: 1, pending: 0 });
    await c.release();
    expect(at()).toEqual({ size: 2, available: 2, borrowed: 0, pending: 0, destroying: 0, min: 0, max: 2 });
  });

  it('counts a resource whose reset is running as borrowed', async () => {
    const resetDone = gate();
    const pool = newPool(fakeFactory(() => ({ reset: () => resetDone.promise })).factory);
    const lease = await pool.acquire();
    const released = lease.release();
    await flush();
    expect(pool.stats()).toMatchObject({ size: 1, available: 0, borrowed: 1 });
    resetDone.open();
    await released;
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0 });
  });

  it('never counts a failed create', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory, { max: 2 });
    const waits = [pool.acquire(), pool.acquire()];
    await flush();
    created.pending[0]?.fail(new Error('refused'));
    await flush();
    expect(pool.stats()).toMatchObject({ size: 1, available: 0, borrowed: 0, pending: 2 });
    created.pending[0]?.succeed();
    await flush();
    expect(pool.stats()).toMatchObject({ borrowed: 1, pending: 1 });
    created.pending[0]?.succeed();
    const leases = await Promise.all(waits);
    expect(pool.stats()).toMatchObject({ size: 2, available: 0, borrowed: 2, pending: 0 });
    for (const lease of leases) await lease.release();
  });
});

describe('inspect().pools', () => {
  it('lists every open pool with its stats, in creation order', async () => {
    const a = newPool(fakeFactory().factory, { name: 'inspect-a', max: 3 });
    newPool(fakeFactory().factory, { name: 'inspect-b', min: 1, max: 2 });
    await flush();
    const lease = await a.acquire();
    const listed = inspect().pools.filter((p) => p.name.startsWith('inspect-'));
    expect(listed).toEqual([
      { name: 'inspect-a', size: 1, available: 0, borrowed: 1, pending: 0, destroying: 0, min: 0, max: 3 },
      { name: 'inspect-b', size: 1, available: 1, borrowed: 0, pending: 0, destroying: 0, min: 1, max: 2 },
    ]);
    expect(JSON.parse(JSON.stringify(inspect().pools))).toEqual(inspect().pools);
    await lease.release();
  });
});
