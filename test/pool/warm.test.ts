/**
 * Warm resources: a resource given back stays with custodian for up to a second and is lent again
 * without generic-pool's acquire. Everything the idle set promises must still hold for it: idle
 * eviction, max lifetime, validation after idling, evict(), close(), an acquire that gives up.
 */
import genericPool from 'generic-pool';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { flush, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, usePools, type Res } from './fake.js';

useCleanCustodian();
const newPool = usePools();

/** Counts generic-pool's acquire calls, whatever pool makes them. */
function countEngineAcquires(): () => number {
  const spy = vi.spyOn(genericPool.Pool.prototype, 'acquire');
  return () => spy.mock.calls.length;
}

afterEach(() => {
  vi.restoreAllMocks();
});

/** A pool of one whose resource (id 1) was just given back, so it is warm. */
async function oneWarm() {
  const fake = fakeFactory();
  const pool = newPool(fake.factory, { max: 1 });
  await (await pool.acquire()).release();
  return { fake, pool };
}

describe('a warm resource', () => {
  it('is lent again without asking generic-pool', async () => {
    const engineAcquires = countEngineAcquires();
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 2 });
    for (let i = 0; i < 100; i++) await (await pool.acquire()).release();
    expect(engineAcquires()).toBe(1); // the first, which created the resource
    expect(fake.createCalls()).toBe(1);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0 });
  });

  it('goes back to generic-pool once it idled a while, and is then lent from there', async () => {
    const engineAcquires = countEngineAcquires();
    const fake = fakeFactory();
    // The evictor runs every 30 ms (half of maxLifetimeMs): resources stay warm that long at most.
    const pool = newPool(fake.factory, { maxLifetimeMs: 60, idleTimeoutMs: 0 });
    await (await pool.acquire()).release();
    await sleep(40);
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    expect(engineAcquires()).toBe(2);
    await lease.release();
  });

  it('is evicted after idleTimeoutMs, down to min', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { min: 1, max: 3, idleTimeoutMs: 30 });
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    for (const lease of leases) await lease.release();
    expect(pool.stats()).toMatchObject({ size: 3, available: 3 });
    await vi.waitFor(() => expect(pool.stats()).toMatchObject({ size: 1, available: 1 }), { timeout: 1000, interval: 10 });
    expect(fake.destroyed).toHaveLength(2);
  });

  it('past maxLifetimeMs is destroyed, never lent', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { maxLifetimeMs: 20, idleTimeoutMs: 0 });
    await (await pool.acquire()).release();
    await sleep(25); // expired, and possibly still warm (the evictor runs every 10 ms)
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
  });

  it('idle past validateAfterIdleMs is validated first; one that fails is destroyed and another lent', async () => {
    const checked: number[] = [];
    const fake = fakeFactory(() => ({ validate: (r: Res) => (checked.push(r.id), r.id !== 1) }));
    const pool = newPool(fake.factory, { validateAfterIdleMs: 20 });
    await (await pool.acquire()).release();
    const recent = await pool.acquire(); // returned just now: not checked
    expect(recent.value.id).toBe(1);
    expect(checked).toEqual([]);
    await recent.release();
    await sleep(30);
    const lease = await pool.acquire();
    expect(checked).toEqual([1]);
    expect(lease.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
  });

  it('evicted with pool.evict() is destroyed at once, and the next acquire gets a new one', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const first = await pool.acquire();
    const value = first.value;
    await first.release();
    expect(pool.evict(value)).toBe(true);
    expect(pool.evict(value)).toBe(false);
    await flush();
    expect(fake.destroyedIds()).toEqual([1]);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0 });
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    await lease.release();
  });

  it('is destroyed by close()', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 3 });
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    for (const lease of leases) await lease.release();
    await pool.close();
    expect(fake.destroyedIds().sort()).toEqual([1, 2, 3]);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0 });
  });

  it('stays in the pool when the acquire taking it is aborted before it resolves', async () => {
    const { pool } = await oneWarm();
    const controller = new AbortController();
    const acquiring = pool.acquire({ signal: controller.signal });
    const reason = new Error('client went away');
    controller.abort(reason);
    await expect(acquiring).rejects.toBe(reason);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    await lease.release();
  });

  it('goes to a waiter queued behind an acquire that gave it up', async () => {
    const { fake, pool } = await oneWarm();
    const controller = new AbortController();
    const refused = pool.acquire({ signal: controller.signal });
    const behind = pool.acquire(); // no warm resource left and no room: it waits
    controller.abort(new Error('gone'));
    await expect(refused).rejects.toThrow('gone');
    const lease = await behind;
    expect(lease.value.id).toBe(1);
    expect(fake.createCalls()).toBe(1);
    await lease.release();
  });
});
