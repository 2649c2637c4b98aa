/**
 * A resource's life in the pool: validate before reuse (validateAfterIdleMs), reset on release,
 * retirement after maxUses borrows or maxLifetimeMs (never while borrowed), idle eviction down to
 * min, min created at start.
 */
import { describe, expect, it, vi } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { channels, withScope } from '../../src/index.js';
import { flush, gate, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, record, settledFlag, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

type DestroyEvent = { pool: string; reason: string; cause?: unknown; error?: unknown };

/** Borrows and gives back one resource: returns its id. */
async function cycle(pool: { acquire(): Promise<{ value: Res; release(): Promise<void> }> }): Promise<number> {
  const lease = await pool.acquire();
  const id = lease.value.id;
  await lease.release();
  return id;
}

describe('validate', () => {
  it.each([
    ['returns false', () => false],
    [
      'throws',
      () => {
        throw new Error('ping failed');
      },
    ],
    ['rejects', () => Promise.reject(new Error('ping failed'))],
    ['resolves false', () => Promise.resolve(false)],
    ['returns null (a falsy answer other than undefined)', () => null as unknown as boolean],
  ])('that %s destroys the resource, and the acquire gets another', async (_how, failing) => {
    const events = record<DestroyEvent>(channels.poolDestroy);
    let broken = false;
    const checked: number[] = [];
    const fake = fakeFactory(() => ({
      validate: (r: Res) => {
        checked.push(r.id);
        return broken ? failing() : true;
      },
    }));
    const pool = newPool(fake.factory, { name: 'validated' });
    expect(await cycle(pool)).toBe(1);
    broken = true;
    const lease = await pool.acquire();
    events.stop();
    expect(lease.value.id).toBe(2);
    expect(checked).toEqual([1]); // the fresh resource 2 was not validated
    expect(fake.destroyedIds()).toEqual([1]);
    expect(events.messages.filter((e) => e.pool === 'validated')).toMatchObject([{ reason: 'validate-failed' }]);
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1, available: 0 });
    await lease.release();
  });

  it.each([
    ['returns undefined (a ping that answered)', () => undefined as unknown as boolean],
    ['resolves undefined', () => Promise.resolve(undefined as unknown as boolean)],
    ['returns a truthy non-boolean', () => 1 as unknown as boolean],
  ])('that %s keeps the resource: only false, a throw or a rejection says broken', async (_how, answer) => {
    const fake = fakeFactory(() => ({ validate: answer }));
    const pool = newPool(fake.factory);
    expect(await cycle(pool)).toBe(1);
    expect(await cycle(pool)).toBe(1);
    expect(fake.destroyedIds()).toEqual([]);
  });

  it('tries the idle resources one after another, then creates', async () => {
    const fake = fakeFactory(() => ({ validate: (r: Res) => r.id === 2 }));
    const pool = newPool(fake.factory, { max: 3 });
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    for (const lease of leases) await lease.release();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    const other = await pool.acquire();
    expect(other.value.id).toBe(4);
    expect(fake.destroyedIds().sort()).toEqual([1, 3]);
    await lease.release();
    await other.release();
  });

  it('does not run for a fresh resource, nor for one handed straight from a releaser to a waiter', async () => {
    const checked: number[] = [];
    const fake = fakeFactory(() => ({ validate: (r: Res) => (checked.push(r.id), true) }));
    const pool = newPool(fake.factory, { max: 1 });
    const holder = await pool.acquire();
    const waiting = pool.acquire();
    await holder.release();
    const lease = await waiting;
    expect(lease.value.id).toBe(1);
    expect(checked).toEqual([]);
    await lease.release();
    await cycle(pool); // from the idle set: validated
    expect(checked).toEqual([1]);
  });

  it('validateAfterIdleMs skips validation for a resource returned recently', async () => {
    const checked: number[] = [];
    const fake = fakeFactory(() => ({ validate: (r: Res) => (checked.push(r.id), true) }));
    const pool = newPool(fake.factory, { validateAfterIdleMs: 60 });
    await cycle(pool);
    await cycle(pool);
    await cycle(pool);
    expect(checked).toEqual([]);
    await sleep(100);
    await cycle(pool);
    expect(checked).toEqual([1]);
    await cycle(pool); // just returned again
    expect(checked).toEqual([1]);
  });

  it('a waiter waits for an async validate, and gets the resource it passed', async () => {
    const verdict = gate<boolean>();
    let checking = false;
    const fake = fakeFactory(() => ({
      validate: () => {
        checking = true;
        return verdict.promise;
      },
    }));
    const pool = newPool(fake.factory);
    await cycle(pool);
    const acquiring = pool.acquire();
    const waiting = settledFlag(acquiring);
    await flush();
    expect(checking).toBe(true);
    expect(waiting.settled).toBe(false);
    expect(pool.stats()).toMatchObject({ size: 1, available: 0, borrowed: 0, pending: 1 });
    verdict.open(true);
    await flush();
    expect(waiting.settled).toBe(true);
    expect(pool.stats()).toMatchObject({ borrowed: 1, pending: 0 });
    expect(fake.createCalls()).toBe(1);
    await (await acquiring).release();
  });
});

describe('reset', () => {
  it('runs on release, before the resource is reused; release resolves after it', async () => {
    const log: string[] = [];
    const resetDone = gate();
    const fake = fakeFactory(() => ({
      reset: async (r: Res) => {
        log.push(`reset ${r.id} start`);
        await resetDone.promise;
        log.push(`reset ${r.id} end`);
      },
    }));
    const pool = newPool(fake.factory, { max: 1 });
    const holder = await pool.acquire();
    const waiting = pool.acquire().then((l) => (log.push(`acquired ${l.value.id}`), l));
    const released = settledFlag(holder.release());
    await flush();
    expect(log).toEqual(['reset 1 start']);
    expect(released.settled).toBe(false);
    expect(pool.stats()).toMatchObject({ borrowed: 1, pending: 1 });
    resetDone.open();
    const lease = await waiting;
    await flush();
    expect(released.settled).toBe(true);
    expect(log).toEqual(['reset 1 start', 'reset 1 end', 'acquired 1']);
    await lease.release();
    expect(log).toHaveLength(5);
    expect(fake.destroyed).toEqual([]);
  });

  it('runs when a scope reclaims the lease too', async () => {
    allowLeaks();
    const resets: number[] = [];
    const fake = fakeFactory(() => ({ reset: (r: Res) => void resets.push(r.id) }));
    const pool = newPool(fake.factory);
    await withScope(async () => {
      await pool.acquire();
    });
    expect(resets).toEqual([1]);
  });

  it.each([
    [
      'throws',
      () => {
        throw new Error('rollback failed');
      },
    ],
    ['rejects', () => Promise.reject(new Error('rollback failed'))],
  ])('that %s destroys the resource; the release still resolves; the next acquire gets a new one', async (_how, failing) => {
    const events = record<DestroyEvent>(channels.poolDestroy);
    const fake = fakeFactory(() => ({ reset: failing }));
    const pool = newPool(fake.factory, { name: 'reset-fails' });
    const lease = await pool.acquire();
    await expect(lease.release()).resolves.toBeUndefined();
    await flush();
    events.stop();
    expect(fake.destroyedIds()).toEqual([1]);
    const mine = events.messages.filter((e) => e.pool === 'reset-fails');
    expect(mine).toHaveLength(1);
    expect(mine[0]?.reason).toBe('reset-failed');
    expect((mine[0]?.cause as Error).message).toBe('rollback failed');
    expect(pool.stats()).toMatchObject({ size: 0, borrowed: 0, available: 0 });
    const next = await pool.acquire();
    expect(next.value.id).toBe(2);
    await next.release();
  });

  it('a failed reset frees the room for a waiter, who gets a new resource', async () => {
    const fake = fakeFactory(() => ({ reset: () => Promise.reject(new Error('rollback failed')) }));
    const pool = newPool(fake.factory, { max: 1 });
    const holder = await pool.acquire();
    const waiting = pool.acquire();
    await holder.release();
    const lease = await waiting;
    expect(lease.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
  });
});

describe('maxUses', () => {
  it('retires a resource after maxUses borrows', async () => {
    const events = record<DestroyEvent>(channels.poolDestroy);
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'uses', maxUses: 2 });
    expect([await cycle(pool), await cycle(pool)]).toEqual([1, 1]);
    await flush();
    expect(fake.destroyedIds()).toEqual([1]);
    expect([await cycle(pool), await cycle(pool), await cycle(pool)]).toEqual([2, 2, 3]);
    await flush();
    events.stop();
    expect(fake.destroyedIds()).toEqual([1, 2]);
    expect(events.messages.filter((e) => e.pool === 'uses').map((e) => e.reason)).toEqual(['max-uses', 'max-uses']);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1 });
  });

  it('maxUses 1: every borrow gets a new resource, and a waiter gets a new one too', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1, maxUses: 1 });
    const holder = await pool.acquire();
    const waiting = pool.acquire();
    await holder.release();
    const lease = await waiting;
    expect(lease.value.id).toBe(2);
    await lease.release();
    expect(fake.destroyedIds()).toEqual([1, 2]);
  });

  it('counts the borrows given straight to waiters', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1, maxUses: 3 });
    let lease = await pool.acquire();
    for (let i = 0; i < 3; i++) {
      const next = pool.acquire();
      await lease.release();
      lease = await next;
    }
    expect(lease.value.id).toBe(2); // uses 1, 2, 3 of resource 1, then resource 2
    await lease.release();
  });
});

describe('maxLifetimeMs', () => {
  it('shortens each lifetime by a random 0-10%, so resources made together do not expire together', async () => {
    // Resource 1 draws the longest cut (10%: it expires at 900 ms), resource 2 none (1000 ms).
    const draws = [0.999, 0];
    const random = vi.spyOn(Math, 'random').mockImplementation(() => draws.shift() ?? 0.5);
    try {
      const fake = fakeFactory();
      const pool = newPool(fake.factory, { name: 'jitter', max: 2, maxLifetimeMs: 1000, idleTimeoutMs: 0 });
      const first = await pool.acquire();
      const second = await pool.acquire();
      await sleep(950); // between the two lifetimes, 50 ms from each
      await first.release();
      await second.release();
      await flush();
      expect(fake.destroyedIds()).toEqual([1]);
      expect(pool.stats()).toMatchObject({ size: 1, available: 1 });
    } finally {
      random.mockRestore();
    }
  });

  it('never destroys a borrowed resource, and retires it when it comes back', async () => {
    const events = record<DestroyEvent>(channels.poolDestroy);
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'aging', maxLifetimeMs: 40 });
    const lease = await pool.acquire();
    await sleep(120); // three lifetimes, several eviction runs
    expect(fake.destroyed).toEqual([]);
    expect(lease.value.id).toBe(1);
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1 });
    await lease.release();
    await flush();
    events.stop();
    expect(fake.destroyedIds()).toEqual([1]);
    expect(events.messages.filter((e) => e.pool === 'aging').map((e) => e.reason)).toEqual(['max-lifetime']);
    expect(pool.stats()).toMatchObject({ size: 0, borrowed: 0, available: 0 });
    expect(await cycle(pool)).toBe(2);
  });

  it('a resource that expired while borrowed is not handed to a waiter: the waiter gets a new one', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1, maxLifetimeMs: 30 });
    const holder = await pool.acquire();
    await sleep(50);
    const waiting = pool.acquire();
    await holder.release();
    const lease = await waiting;
    expect(lease.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
  });

  it('retires an idle resource once it is too old', async () => {
    const events = record<DestroyEvent>(channels.poolDestroy);
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'idle-aging', maxLifetimeMs: 40, idleTimeoutMs: 0 });
    await cycle(pool);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1 });
    await sleep(150);
    events.stop();
    expect(fake.destroyedIds()).toEqual([1]);
    expect(events.messages.filter((e) => e.pool === 'idle-aging').map((e) => e.reason)).toEqual(['max-lifetime']);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0 });
  });

  it('keeps min by replacing expired resources', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { min: 1, maxLifetimeMs: 40, idleTimeoutMs: 0 });
    await sleep(150);
    expect(fake.destroyed.length).toBeGreaterThanOrEqual(1);
    expect(fake.createCalls()).toBe(fake.destroyed.length + 1);
    expect(pool.stats().size).toBe(1);
  });
});

describe('idle eviction and min', () => {
  it('creates min resources at start', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { min: 3, max: 5 });
    await flush();
    expect(fake.createCalls()).toBe(3);
    expect(pool.stats()).toEqual({ size: 3, available: 3, borrowed: 0, pending: 0, destroying: 0, min: 3, max: 5 });
  });

  it('shrinks the pool down to min after idleTimeoutMs, and not below', async () => {
    const events = record<DestroyEvent>(channels.poolDestroy);
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'shrinking', min: 1, max: 5, idleTimeoutMs: 30 });
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()]);
    expect(fake.createCalls()).toBe(4);
    for (const lease of leases) await lease.release();
    expect(pool.stats()).toMatchObject({ size: 4, available: 4 });
    await sleep(150);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0 });
    expect(fake.destroyed).toHaveLength(3);
    await sleep(100);
    events.stop();
    expect(pool.stats()).toMatchObject({ size: 1, available: 1 });
    expect(fake.destroyed).toHaveLength(3);
    expect(fake.createCalls()).toBe(4);
    expect(events.messages.filter((e) => e.pool === 'shrinking').map((e) => e.reason)).toEqual(['idle', 'idle', 'idle']);
  });

  it('shrinks to nothing with min 0, and does not evict borrowed resources', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 3, idleTimeoutMs: 20 });
    const kept = await pool.acquire();
    await cycle(pool);
    await sleep(100);
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1, available: 0 });
    expect(fake.destroyedIds()).toEqual([2]);
    await kept.release();
    await sleep(100);
    expect(pool.stats()).toMatchObject({ size: 0 });
    expect(fake.destroyedIds()).toEqual([2, 1]);
  });

  it('hands out the most recently returned idle resource first (LIFO)', async () => {
    const pool = newPool(fakeFactory().factory, { max: 3 });
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    const order = [leases[1], leases[2], leases[0]].map((l) => l?.value.id);
    for (const i of [1, 2, 0]) await leases[i]?.release();
    const next = await pool.acquire();
    expect(next.value.id).toBe(order[2]); // returned last
    const after = await pool.acquire();
    expect(after.value.id).toBe(order[1]);
    await next.release();
    await after.release();
  });

  it('keeps idle resources with idleTimeoutMs 0', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { idleTimeoutMs: 0 });
    await cycle(pool);
    await sleep(60);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1 });
    expect(fake.destroyed).toEqual([]);
  });

  it('refills min after a lease destroys its resource', async () => {
    const events = record<DestroyEvent>(channels.poolDestroy);
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'refill', min: 2, max: 4 });
    await flush();
    const lease = await pool.acquire();
    const cause = new Error('connection reset');
    await lease.destroy(cause);
    await flush();
    events.stop();
    expect(fake.destroyed).toHaveLength(1);
    expect(fake.createCalls()).toBe(3);
    expect(pool.stats()).toMatchObject({ size: 2, available: 2, borrowed: 0 });
    expect(events.messages.filter((e) => e.pool === 'refill')).toMatchObject([{ reason: 'destroyed', cause }]);
  });
});
