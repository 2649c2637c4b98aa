/**
 * Giving a resource back: release twice, destroy then release, release after the scope reclaimed
 * it — each resource is returned or destroyed exactly once, and never handed to two holders.
 * A cancelled task's lease is destroyed rather than reused.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { channels, LeaseReleasedError, withScope, type Lease, type LeakReport } from '../../src/index.js';
import { collectReports, flush, gate, never, rejectionOf, useCleanCustodian } from '../helpers.js';
import { fakeFactory, record, settledFlag, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

describe('release twice', () => {
  it('returns the resource once: the second call returns the first call’s promise', async () => {
    const resets: number[] = [];
    const releases = record<{ pool: string }>(channels.poolRelease);
    const fake = fakeFactory(() => ({ reset: (r: Res) => void resets.push(r.id) }));
    const pool = newPool(fake.factory, { name: 'twice' });
    const lease = await pool.acquire();
    const first = lease.release();
    const second = lease.release();
    expect(second).toBe(first);
    await first;
    await lease.release();
    releases.stop();
    expect(resets).toEqual([1]);
    expect(releases.messages.filter((m) => m.pool === 'twice')).toHaveLength(1);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0 });
  });

  it('never hands one resource to two waiters', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1, acquireTimeoutMs: 10_000 });
    const lease = await pool.acquire();
    const firstWaiter = pool.acquire();
    const second = pool.acquire();
    const secondWaiter = settledFlag(second);
    await lease.release();
    await lease.release();
    await lease[Symbol.asyncDispose]();
    const got = await firstWaiter;
    await flush();
    expect(got.value.id).toBe(1);
    expect(secondWaiter.settled).toBe(false);
    expect(pool.stats()).toMatchObject({ borrowed: 1, pending: 1, available: 0 });
    await got.release();
    await (await second).release();
  });

  it('a second release while an async reset runs waits for the same reset', async () => {
    const resetDone = gate();
    let resets = 0;
    const pool = newPool(fakeFactory(() => ({ reset: () => (resets++, resetDone.promise) })).factory);
    const lease = await pool.acquire();
    const first = settledFlag(lease.release());
    const second = settledFlag(lease.release());
    await flush();
    expect([first.settled, second.settled]).toEqual([false, false]);
    resetDone.open();
    await flush();
    expect([first.settled, second.settled]).toEqual([true, true]);
    expect(resets).toBe(1);
  });

  it('makes lease.value throw LeaseReleasedError after release', async () => {
    const pool = newPool(fakeFactory().factory);
    const lease = await pool.acquire();
    await lease.release();
    expect(() => lease.value).toThrow(LeaseReleasedError);
  });
});

describe('destroy and release', () => {
  it('destroy then release: destroyed once, never returned; a waiter gets a new resource', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1, acquireTimeoutMs: 10_000 });
    const lease = await pool.acquire();
    const waiting = pool.acquire();
    const destroyed = lease.destroy(new Error('broken'));
    expect(lease.release()).toBe(destroyed);
    await destroyed;
    await lease.release();
    await lease.destroy();
    const next = await waiting;
    expect(next.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1, available: 0 });
    await next.release();
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 0, available: 1 });
  });

  it('release then destroy: the resource stays in the pool', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const lease = await pool.acquire();
    await lease.release();
    await lease.destroy(new Error('too late'));
    expect(fake.destroyed).toEqual([]);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1 });
  });

  it('destroy does not run reset', async () => {
    let resets = 0;
    const fake = fakeFactory(() => ({ reset: () => void resets++ }));
    const pool = newPool(fake.factory);
    await (await pool.acquire()).destroy();
    expect(resets).toBe(0);
    expect(fake.destroyedIds()).toEqual([1]);
  });

  it('a release after the scope reclaimed the lease is harmless', async () => {
    allowLeaks();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    let kept: Lease<Res> | undefined;
    await withScope(async () => {
      kept = await pool.acquire();
    });
    const other = await pool.acquire();
    await kept?.release();
    await kept?.destroy();
    expect(pool.stats()).toMatchObject({ borrowed: 1, available: 0 });
    expect(other.released).toBe(false);
    expect(fake.destroyed).toEqual([]);
    await other.release();
  });

  it('`using` (synchronous dispose) gives the lease back at the end of the block', async () => {
    const pool = newPool(fakeFactory().factory);
    {
      using lease = await pool.acquire();
      expect(lease.released).toBe(false);
    }
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
  });
});

describe('a task cancelled while it holds a lease', () => {
  it('has the resource destroyed, not reused, and reported as cancelled', async () => {
    const destroys = record<{ pool: string; reason: string; cause?: unknown }>(channels.poolDestroy);
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'cancelled' });
    const { reports, stop } = collectReports();
    const acquired = gate();
    const task = withScope(
      async () => {
        await pool.acquire();
        acquired.open();
        await never(); // ignores its signal
      },
      { timeout: 30 },
    );
    await acquired.promise;
    const reason = await rejectionOf(task);
    destroys.stop();
    stop();
    expect(fake.destroyedIds()).toEqual([1]);
    expect(destroys.messages.filter((m) => m.pool === 'cancelled')).toMatchObject([{ reason: 'destroyed', cause: reason }]);
    const unreleased = reports.filter((r): r is Extract<LeakReport, { type: 'unreleased' }> => r.type === 'unreleased');
    expect(unreleased).toHaveLength(1);
    expect(unreleased[0]?.cancelled).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 0, borrowed: 0 });
  });
});
