/**
 * A failing `create`: the waiters nothing else can serve fail at once with PoolCreateError (cause:
 * the factory's error) instead of waiting out acquireTimeoutMs, `create` is not retried in a loop,
 * and a failure never fails waiters that a borrowed resource or another create can still serve.
 */
import { describe, expect, it } from 'vitest';
import { PoolCreateError, PoolTimeoutError } from '../../src/index.js';
import { flush, rejectionOf, settle, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, manualCreate, record, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

const refused = new Error('connect ECONNREFUSED 127.0.0.1:3306');

describe('a create that always fails', () => {
  it.each([
    [
      'throws synchronously',
      () => {
        throw refused;
      },
    ],
    ['rejects', () => Promise.reject(refused)],
    ['rejects later', () => sleep(5).then(() => Promise.reject(refused))],
  ])(
    'that %s: 100 concurrent acquires all fail fast with PoolCreateError, create runs at most max times, then never again',
    async (_how, create) => {
      const fake = fakeFactory(() => ({ create: create as () => Res | Promise<Res> }));
      const pool = newPool(fake.factory, { name: 'down', max: 10, acquireTimeoutMs: 10_000 });
      const t0 = performance.now();
      const errors = await Promise.all(Array.from({ length: 100 }, () => rejectionOf(pool.acquire())));
      const elapsed = performance.now() - t0;
      expect(elapsed).toBeLessThan(1000); // far below acquireTimeoutMs (10 s): nobody waited it out
      for (const error of errors) {
        expect(error).toBeInstanceOf(PoolCreateError);
        expect((error as PoolCreateError).code).toBe('ERR_CUSTODIAN_POOL_CREATE');
        expect((error as PoolCreateError).pool).toBe('down');
        expect((error as Error).cause).toBe(refused);
      }
      expect((errors[0] as Error).message).toBe(
        'pool.acquire(): creating a pooled resource for pool "down" failed (Error: connect ECONNREFUSED 127.0.0.1:3306), and nothing else could serve this acquire: none is borrowed, none is being created or checked',
      );
      const calls = fake.createCalls();
      expect(calls).toBeGreaterThanOrEqual(1);
      expect(calls).toBeLessThanOrEqual(10); // at most one attempt per slot of max, not one per acquire
      expect(pool.stats()).toEqual({ size: 0, available: 0, borrowed: 0, pending: 0, destroying: 0, min: 0, max: 10 });
      await sleep(50);
      expect(fake.createCalls()).toBe(calls); // no retry loop once everyone has been answered
    },
  );

  it('with min > 0: retries the refill after a backoff that grows, never in a loop; acquires fail fast meanwhile', async () => {
    const events = record<{ pool: string; error?: unknown }>('custodian:pool:create');
    const fake = fakeFactory(() => ({ create: () => Promise.reject(refused) }));
    const pool = newPool(fake.factory, { name: 'down-min', min: 2, max: 4, idleTimeoutMs: 20 });
    await sleep(30);
    expect(fake.createCalls()).toBe(2); // the first refill, then a backoff of about 100 ms
    const errors = await Promise.all(Array.from({ length: 10 }, () => rejectionOf(pool.acquire())));
    expect(errors.every((e) => e instanceof PoolCreateError)).toBe(true);
    await sleep(1_000);
    events.stop();
    // Refills at about 0, 100 and 500 ms (the backoff doubles with each failure, from 100 ms, ±20 %),
    // 2 creates each, plus one attempt per acquire slot: far from a loop.
    const calls = fake.createCalls();
    expect(calls).toBeGreaterThanOrEqual(2 + 2 + 1);
    expect(calls).toBeLessThanOrEqual(2 + 4 + 2 + 2);
    const mine = events.messages.filter((m) => m.pool === 'down-min');
    expect(mine).toHaveLength(calls);
    expect(mine.every((m) => m.error === refused)).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0, pending: 0 });
  });

  it('with min > 0: reaches min once the server is back after a failed refill', async () => {
    let up = true;
    const fake = fakeFactory((f) => ({
      create: () => (up ? f.make() : Promise.reject(refused)),
    }));
    const pool = newPool(fake.factory, { min: 2, max: 4, idleTimeoutMs: 0 });
    await flush();
    expect(pool.stats().size).toBe(2);
    up = false;
    const lease = await pool.acquire();
    await lease.destroy(new Error('connection reset')); // the refill that replaces it fails: the server is down
    await flush();
    expect(pool.stats().size).toBe(1);
    await sleep(50);
    up = true; // back 50 ms after the failed refill
    await settle(
      async () => pool.stats().size,
      (size) => size === 2,
      2_000,
    );
    expect(pool.stats()).toMatchObject({ size: 2, available: 2 });
  });

  it('fails the acquires made while the failing create ran, each one once', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory, { max: 1, acquireTimeoutMs: 10_000 });
    const waits = [rejectionOf(pool.acquire()), rejectionOf(pool.acquire()), rejectionOf(pool.acquire())];
    await flush();
    expect(created.pending).toHaveLength(1);
    expect(pool.stats()).toMatchObject({ pending: 3 });
    created.pending[0]?.fail(refused);
    const errors = await Promise.all(waits);
    expect(errors.map((e) => (e as Error).cause)).toEqual([refused, refused, refused]);
    expect(fake.createCalls()).toBe(1);
  });
});

describe('a create that fails, then works', () => {
  it('the failed acquire gets PoolCreateError; an acquire queued later gets a resource', async () => {
    let failures = 1;
    const fake = fakeFactory((f) => ({
      create: () => {
        if (failures-- > 0) throw refused;
        return f.make();
      },
    }));
    const pool = newPool(fake.factory, { max: 1 });
    const error = await rejectionOf(pool.acquire());
    expect(error).toBeInstanceOf(PoolCreateError);
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    expect(fake.createCalls()).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1, available: 0 });
    await lease.release();
  });

  it('an acquire queued after a failure starts an attempt of its own; no waiter fails while an attempt is under way', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory, { max: 2, acquireTimeoutMs: 10_000 });
    const got: string[] = [];
    const take = (name: string) => pool.acquire().then((l) => (got.push(`${name}:${l.value.id}`), l));
    const a = take('a');
    const b = take('b');
    await flush();
    expect(created.pending).toHaveLength(2);
    created.pending[0]?.fail(refused);
    await flush();
    const c = take('c'); // queued after the first failure, while the second create still runs
    await flush();
    expect(created.pending).toHaveLength(2); // c's own attempt started
    created.pending[0]?.fail(refused); // the second of the early creates fails too
    await flush();
    expect(got).toEqual([]); // c's attempt is under way: nobody is failed yet
    expect(pool.stats().pending).toBe(3);
    created.pending[0]?.succeed(); // id 1, to the oldest waiter
    await flush();
    expect(got).toEqual(['a:1']);
    expect(created.pending).toHaveLength(1); // room for one more: an attempt for b
    created.pending[0]?.succeed(); // id 2
    await flush();
    expect(got).toEqual(['a:1', 'b:2']);
    expect(created.pending).toHaveLength(0); // max reached: c waits for a release
    await (await a).release();
    await flush();
    expect(got).toEqual(['a:1', 'b:2', 'c:1']);
    expect(fake.createCalls()).toBe(4);
    for (const lease of await Promise.all([b, c])) await lease.release();
  });

  it('a failure while another create is under way rejects nobody: that create serves the oldest waiter, the next gets a new one', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory, { max: 2, acquireTimeoutMs: 10_000 });
    const got: string[] = [];
    const a = pool.acquire().then((l) => (got.push(`a:${l.value.id}`), l));
    const b = pool.acquire().then((l) => (got.push(`b:${l.value.id}`), l));
    await flush();
    expect(created.pending).toHaveLength(2);
    created.pending[0]?.fail(refused);
    await flush();
    expect(got).toEqual([]);
    expect(pool.stats().pending).toBe(2);
    created.pending[0]?.succeed(); // id 1
    await flush();
    expect(got).toEqual(['a:1']);
    expect(created.pending).toHaveLength(1); // a new attempt for b, not a retry loop
    created.pending[0]?.succeed(); // id 2
    await flush();
    expect(got).toEqual(['a:1', 'b:2']);
    expect(fake.createCalls()).toBe(3);
    for (const lease of await Promise.all([a, b])) await lease.release();
  });
});

describe('a create failure while resources are borrowed', () => {
  it('does not reject the waiter: it gets the resource given back', async () => {
    let fail = false;
    const fake = fakeFactory((f) => ({
      create: () => {
        if (fail) return Promise.reject(refused);
        return f.make();
      },
    }));
    const pool = newPool(fake.factory, { max: 2, acquireTimeoutMs: 10_000 });
    const holder = await pool.acquire();
    fail = true;
    const waiting = pool.acquire();
    await sleep(20);
    expect(fake.createCalls()).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 1, available: 0, borrowed: 1, pending: 1 });
    await holder.release();
    const lease = await waiting;
    expect(lease.value.id).toBe(1);
    await sleep(20);
    expect(fake.createCalls()).toBe(2); // the failed create was not retried meanwhile
    await lease.release();
  });

  it('a PoolTimeoutError after a create failure during the wait carries the create error as cause', async () => {
    let fail = false;
    const fake = fakeFactory((f) => ({
      create: () => {
        if (fail) throw refused;
        return f.make();
      },
    }));
    const pool = newPool(fake.factory, { name: 'flaky', max: 2, acquireTimeoutMs: 10_000 });
    const holder = await pool.acquire();
    fail = true;
    const error = await rejectionOf(pool.acquire({ timeout: 40 }));
    expect(error).toBeInstanceOf(PoolTimeoutError);
    expect((error as Error).cause).toBe(refused);
    expect((error as Error).message).toMatch(/Creating one failed \d+ ms ago \(see cause\): is the server up\?$/);
    await holder.release();
  });

  it('a PoolTimeoutError has no cause when the create failure was before the acquire began', async () => {
    let fail = true;
    const fake = fakeFactory((f) => ({
      create: () => {
        if (fail) throw refused;
        return f.make();
      },
    }));
    const pool = newPool(fake.factory, { max: 1 });
    expect(await rejectionOf(pool.acquire())).toBeInstanceOf(PoolCreateError);
    fail = false;
    const holder = await pool.acquire();
    const error = await rejectionOf(pool.acquire({ timeout: 20 }));
    expect(error).toBeInstanceOf(PoolTimeoutError);
    expect((error as Error).cause).toBeUndefined();
    await holder.release();
  });
});
