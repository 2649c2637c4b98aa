/**
 * Validation of an idle resource on borrow. A validate that answers at once (mysql's: a state flag)
 * is asked before the acquire queues, and a yes lends the resource with no waiter, timer or extra
 * promise; a no, a throw or a promise takes the queue as the oldest waiter, as before.
 */
import { describe, expect, it } from 'vitest';
import { withScope, type Pool } from '../../src/index.js';
import { useCleanCustodian } from '../helpers.js';
import { fakeFactory, usePools, type Res } from './fake.js';

useCleanCustodian();
const newPool = usePools();

/** A pool of `max` whose validate answers `answer(resource)`, recording how many acquires waited when it was asked. */
function validating(answer: (resource: Res) => unknown, max = 1) {
  const pendingWhenAsked: number[] = [];
  const asked: number[] = [];
  const fake = fakeFactory(() => ({
    validate: (resource: Res) => {
      asked.push(resource.id);
      pendingWhenAsked.push(pool.stats().pending); // validate runs only after the pool below exists
      return answer(resource) as boolean;
    },
  }));
  const pool: Pool<Res> = newPool(fake.factory, { max });
  return { fake, pool, asked, pendingWhenAsked };
}

describe('a validate that answers at once', () => {
  it('is asked before the acquire queues, and a yes lends the idle resource', async () => {
    const { pool, asked, pendingWhenAsked } = validating(() => true);
    await (await pool.acquire()).release(); // made for the acquire: not validated
    await withScope(async () => {
      for (let i = 0; i < 3; i++) await (await pool.acquire()).release();
    });
    expect(asked).toEqual([1, 1, 1]);
    // Asked from the queue, the acquire would be counted as pending (1) while validate runs.
    expect(pendingWhenAsked).toEqual([0, 0, 0]);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
  });

  it('undefined is a yes (a ping that answered nothing)', async () => {
    const { fake, pool, asked } = validating(() => undefined);
    await (await pool.acquire()).release();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    expect(asked).toEqual([1]);
    expect(fake.destroyed).toEqual([]);
    await lease.release();
  });

  it('a no destroys it once, and the acquire gets a new resource unvalidated', async () => {
    const { fake, pool, asked } = validating((r) => r.id !== 1);
    await (await pool.acquire()).release();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    expect(asked).toEqual([1]); // 2 was made for the waiting acquire: not asked
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
  });

  it('a throw is a no, never an error for the caller', async () => {
    const { fake, pool } = validating((r) => {
      if (r.id === 1) throw new Error('validate blew up');
      return true;
    });
    await (await pool.acquire()).release();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
  });

  it('two concurrent acquires get the two idle resources, a third waits for one given back', async () => {
    const { fake, pool } = validating(() => true, 2);
    for (const lease of await Promise.all([pool.acquire(), pool.acquire()])) await lease.release();
    const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
    expect(new Set([a!.value.id, b!.value.id])).toEqual(new Set([1, 2]));
    const third = pool.acquire();
    expect(pool.stats().pending).toBe(1);
    const freed = a!.value.id;
    await a!.release();
    const c = await third;
    expect(c.value.id).toBe(freed);
    await Promise.all([b!.release(), c.release()]);
    expect(fake.createCalls()).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 2, borrowed: 0, pending: 0 });
  });
});

describe('a validate that answers with a promise', () => {
  it('is asked once, with the acquire as the oldest waiter', async () => {
    const { pool, asked, pendingWhenAsked } = validating(() => Promise.resolve(true));
    await (await pool.acquire()).release();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    expect(asked).toEqual([1]);
    expect(pendingWhenAsked).toEqual([0]); // asked before it queued; its answer settles from the queue
    expect(pool.stats().pending).toBe(0);
    await lease.release();
  });

  it('a promised no destroys it and the acquire gets a new resource', async () => {
    const { fake, pool } = validating((r) => Promise.resolve(r.id !== 1));
    await (await pool.acquire()).release();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
  });
});
