/**
 * Acquires that wait: FIFO order; the pool's acquireTimeoutMs and the acquire's own timeout
 * (PoolTimeoutError); an AbortSignal; the scope's timeout, cancel() and close(); maxWaiting
 * (PoolFullError). A waiter that gave up leaves at once and never gets a resource later: what is
 * released afterwards goes to the next waiter, or back to the pool.
 */
import { describe, expect, it } from 'vitest';
import {
  openScope,
  PoolFullError,
  PoolTimeoutError,
  ScopeClosedError,
  ScopeTimeoutError,
  withScope,
  type Lease,
  type Scope,
} from '../../src/index.js';
import { flush, rejectionOf, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, settledFlag, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

/** A pool of one resource, already borrowed by `holder`. */
async function busyPool(options: Parameters<typeof newPool>[1] = {}) {
  const fake = fakeFactory();
  const pool = newPool(fake.factory, { max: 1, ...options });
  const holder = await pool.acquire();
  expect(holder.value.id).toBe(1);
  return { fake, pool, holder };
}

/** Resolves with the id a lease's resource has, and releases nothing. */
const idOf = (lease: Lease<Res>) => lease.value.id;

describe('waiters are served in order', () => {
  it('hands released resources to waiters first come, first served', async () => {
    const { fake, pool, holder } = await busyPool();
    const order: number[] = [];
    const waits = [1, 2, 3, 4, 5].map((n) =>
      pool.acquire().then(async (lease) => {
        order.push(n);
        await lease.release();
      }),
    );
    expect(pool.stats().pending).toBe(5);
    await holder.release();
    await Promise.all(waits);
    expect(order).toEqual([1, 2, 3, 4, 5]);
    expect(fake.createCalls()).toBe(1);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
  });

  it('hands a released resource straight to a waiter (it is never idle in between)', async () => {
    const { pool, holder } = await busyPool();
    const waiting = pool.acquire();
    await holder.release();
    expect(pool.stats()).toMatchObject({ available: 0, borrowed: 1, pending: 0 });
    const lease = await waiting;
    expect(lease.value.id).toBe(1);
    await lease.release();
  });
});

describe("acquireTimeoutMs and the acquire's timeout", () => {
  it('rejects with PoolTimeoutError after the pool acquireTimeoutMs', async () => {
    const { pool, holder } = await busyPool({ name: 'timeouts', acquireTimeoutMs: 30 });
    const error = await rejectionOf(pool.acquire());
    expect(error).toBeInstanceOf(PoolTimeoutError);
    const timeout = error as PoolTimeoutError;
    expect(timeout.name).toBe('PoolTimeoutError');
    expect(timeout.code).toBe('ERR_CUSTODIAN_POOL_TIMEOUT');
    expect(timeout.pool).toBe('timeouts');
    expect(timeout.waitMs).toBeGreaterThanOrEqual(29);
    expect(timeout.waitMs).toBeLessThan(5000);
    expect(timeout.cause).toBeUndefined();
    expect(timeout.message).toMatch(
      /^pool\.acquire\(\): no pooled resource from pool "timeouts" within \d+ ms \(acquireTimeoutMs\); 1 of 1 borrowed, 0 idle, 0 more waiting\. Every one is borrowed/,
    );
    expect(timeout.message).toContain('held longest: test/pool/waiters.test.ts:');
    expect(pool.stats().pending).toBe(0);
    await holder.release();
  });

  it("rejects after the acquire's own timeout, which overrides the pool's", async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    const t0 = performance.now();
    const error = await rejectionOf(pool.acquire({ timeout: 30 }));
    expect(performance.now() - t0).toBeLessThan(5000); // not the pool's 10 s
    expect(error).toBeInstanceOf(PoolTimeoutError);
    expect((error as PoolTimeoutError).waitMs).toBeGreaterThanOrEqual(20);
    expect((error as Error).message).toContain("(the acquire's timeout)");
    await holder.release();
  });

  it('a shorter own timeout fails first while an earlier waiter on the pool timeout keeps waiting', async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    const patient = pool.acquire();
    const hasty = pool.acquire({ timeout: 20 });
    expect(await rejectionOf(hasty)).toBeInstanceOf(PoolTimeoutError);
    expect(pool.stats().pending).toBe(1);
    await holder.release();
    const lease = await patient;
    expect(lease.value.id).toBe(1);
    await lease.release();
  });

  it("an own timeout longer than the pool's is honoured: the pool's timer does not end it", async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 20 });
    const early = rejectionOf(pool.acquire()); // arms the pool's shared timer
    const patient = pool.acquire({ timeout: 5000 });
    const patientFlag = settledFlag(patient);
    expect(await early).toBeInstanceOf(PoolTimeoutError);
    await sleep(40);
    expect(patientFlag.settled).toBe(false);
    await holder.release();
    const lease = await patient;
    expect(lease.value.id).toBe(1);
    await lease.release();
  });

  it('gives each waiter on the shared acquireTimeoutMs its full wait, whenever it queued', async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 40 });
    const first = rejectionOf(pool.acquire());
    await sleep(25);
    const second = rejectionOf(pool.acquire());
    const [a, b] = (await Promise.all([first, second])) as PoolTimeoutError[];
    expect(a).toBeInstanceOf(PoolTimeoutError);
    expect(b).toBeInstanceOf(PoolTimeoutError);
    expect(a?.waitMs).toBeGreaterThanOrEqual(39);
    expect(b?.waitMs).toBeGreaterThanOrEqual(39);
    await holder.release();
  });

  it('does not hand the resource released later to the waiter that timed out: it goes back to the pool', async () => {
    const { fake, pool, holder } = await busyPool({ acquireTimeoutMs: 20 });
    const waiting = pool.acquire();
    const error = await rejectionOf(waiting);
    expect(error).toBeInstanceOf(PoolTimeoutError);
    await holder.release();
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
    const next = await pool.acquire();
    expect(next.value).toBe(fake.created[0]);
    await next.release();
    expect(fake.createCalls()).toBe(1);
  });

  it('hands it to the next waiter when the one that timed out was in the middle of the queue', async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    const got: string[] = [];
    const first = pool.acquire().then((l) => (got.push(`first:${idOf(l)}`), l));
    const middle = pool.acquire({ timeout: 20 });
    const last = pool.acquire().then((l) => (got.push(`last:${idOf(l)}`), l));
    expect(await rejectionOf(middle)).toBeInstanceOf(PoolTimeoutError);
    expect(pool.stats().pending).toBe(2);
    await holder.release();
    const a = await first;
    expect(got).toEqual(['first:1']);
    await a.release();
    const b = await last;
    expect(got).toEqual(['first:1', 'last:1']);
    await b.release();
    expect(pool.stats()).toMatchObject({ available: 1, borrowed: 0, pending: 0 });
  });

  it('waits forever with acquireTimeoutMs 0, and with an own timeout of 0 on a pool that has one', async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 0 });
    const waiting = pool.acquire();
    const forever = settledFlag(waiting);
    await sleep(60);
    expect(forever.settled).toBe(false);
    await holder.release();
    await (await waiting).release();

    const timed = await busyPool({ acquireTimeoutMs: 20 });
    const own = timed.pool.acquire({ timeout: 0 });
    const ownFlag = settledFlag(own);
    await sleep(60);
    expect(ownFlag.settled).toBe(false);
    await timed.holder.release();
    const lease = await own;
    expect(lease.value.id).toBe(1);
    await lease.release();
  });

  it('times out an acquire waiting for a slow create, and the resource made later goes to the pool', async () => {
    let finishCreate!: () => void;
    const fake = fakeFactory((f) => ({
      create: () => new Promise<Res>((resolve) => (finishCreate = () => resolve(f.make()))),
    }));
    const pool = newPool(fake.factory, { max: 1, acquireTimeoutMs: 20 });
    const error = await rejectionOf(pool.acquire());
    expect(error).toBeInstanceOf(PoolTimeoutError);
    expect((error as Error).message).toContain('Creating or validating one is taking this long');
    finishCreate();
    await flush();
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    expect(fake.createCalls()).toBe(1);
    await lease.release();
  });
});

describe('an AbortSignal', () => {
  it('already aborted: rejects with its reason, creating nothing and queueing nothing', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const reason = new Error('client went away');
    expect(await rejectionOf(pool.acquire({ signal: AbortSignal.abort(reason) }))).toBe(reason);
    expect(fake.createCalls()).toBe(0);
    expect(pool.stats()).toMatchObject({ size: 0, pending: 0, borrowed: 0 });
  });

  it('aborted while waiting: rejects at once with its reason; the resource released later goes back to the pool', async () => {
    const { fake, pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    const controller = new AbortController();
    const waiting = pool.acquire({ signal: controller.signal });
    expect(pool.stats().pending).toBe(1);
    const reason = new Error('request aborted');
    controller.abort(reason);
    expect(await rejectionOf(waiting)).toBe(reason);
    expect(pool.stats()).toMatchObject({ pending: 0, borrowed: 1 });
    await holder.release();
    expect(pool.stats()).toMatchObject({ available: 1, borrowed: 0 });
    expect(fake.createCalls()).toBe(1);
  });

  it('aborted while waiting: the released resource goes to the next waiter', async () => {
    const { pool, holder } = await busyPool();
    const controller = new AbortController();
    const aborted = pool.acquire({ signal: controller.signal });
    const next = pool.acquire();
    controller.abort();
    const reason = await rejectionOf(aborted);
    expect(reason).toBeInstanceOf(DOMException);
    expect((reason as DOMException).name).toBe('AbortError');
    await holder.release();
    const lease = await next;
    expect(lease.value.id).toBe(1);
    expect(pool.stats()).toMatchObject({ borrowed: 1, pending: 0, available: 0 });
    await lease.release();
  });

  it('aborted after the acquire was served: the lease stays held', async () => {
    const pool = newPool(fakeFactory().factory);
    const controller = new AbortController();
    const lease = await pool.acquire({ signal: controller.signal });
    controller.abort();
    await flush();
    expect(lease.released).toBe(false);
    expect(pool.stats().borrowed).toBe(1);
    await lease.release();
  });

  it('one signal shared by many waiters rejects them all, and the pool hands out nothing to them', async () => {
    const { pool, holder } = await busyPool();
    const controller = new AbortController();
    const waits = Array.from({ length: 5 }, () => rejectionOf(pool.acquire({ signal: controller.signal })));
    const reason = new Error('shutdown');
    controller.abort(reason);
    expect(await Promise.all(waits)).toEqual([reason, reason, reason, reason, reason]);
    await holder.release();
    expect(pool.stats()).toMatchObject({ available: 1, borrowed: 0, pending: 0 });
  });
});

describe("the acquiring scope's end", () => {
  it("the scope's timeout rejects a waiting acquire at once with the ScopeTimeoutError", async () => {
    const { fake, pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    const t0 = performance.now();
    const error = await rejectionOf(withScope(() => pool.acquire(), { timeout: 30 }));
    expect(error).toBeInstanceOf(ScopeTimeoutError);
    expect(performance.now() - t0).toBeLessThan(5000); // the scope's 30 ms, not the pool's 10 s
    expect(pool.stats()).toMatchObject({ pending: 0, borrowed: 1 });
    await holder.release();
    expect(pool.stats()).toMatchObject({ available: 1, borrowed: 0 });
    expect(fake.createCalls()).toBe(1);
  });

  it('the waiting acquire itself rejects with the scope timeout reason (not a PoolTimeoutError later)', async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    let inner: Promise<unknown> | undefined;
    await withScope(
      async () => {
        inner = rejectionOf(pool.acquire());
        await inner;
      },
      { timeout: 20 },
    ).catch(() => {});
    const reason = await inner;
    expect(reason).toBeInstanceOf(ScopeTimeoutError);
    await holder.release();
    expect(pool.stats()).toMatchObject({ available: 1, pending: 0 });
  });

  it('scope.cancel(reason) rejects a waiting acquire with that reason; the resource goes to the next waiter', async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    let scope: Scope | undefined;
    let acquired: Promise<Lease<Res>> | undefined;
    const task = withScope((s) => {
      scope = s;
      acquired = pool.acquire();
      return acquired;
    });
    const next = pool.acquire(); // outside the scope, queued after the scope's acquire
    const reason = new Error('cancelled by the test');
    scope?.cancel(reason);
    expect(await rejectionOf(acquired as Promise<Lease<Res>>)).toBe(reason);
    expect(await rejectionOf(task)).toBe(reason);
    expect(pool.stats().pending).toBe(1);
    await holder.release();
    const lease = await next;
    expect(lease.value.id).toBe(1);
    expect(pool.stats()).toMatchObject({ borrowed: 1, pending: 0 });
    await lease.release();
  });

  it("closing an openScope rejects the scope's waiting acquire with a ScopeClosedError", async () => {
    const { pool, holder } = await busyPool({ acquireTimeoutMs: 10_000 });
    const scope = openScope();
    const waiting = scope.run(() => pool.acquire());
    expect(pool.stats().pending).toBe(1);
    await scope.close();
    expect(await rejectionOf(waiting)).toBeInstanceOf(ScopeClosedError);
    expect(pool.stats().pending).toBe(0);
    await holder.release();
    expect(pool.stats()).toMatchObject({ available: 1, borrowed: 0 });
  });

  it('an acquire in a scope already cancelled rejects with the reason and creates nothing', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const scope = openScope();
    const reason = new Error('already cancelled');
    scope.cancel(reason);
    expect(await rejectionOf(scope.run(() => pool.acquire()))).toBe(reason);
    expect(fake.createCalls()).toBe(0);
    await scope.close();
  });

  it('an acquire in a closed scope rejects with a ScopeClosedError naming the pool', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'late' });
    // A timer set by the task fires after the task ended, still in the task's (closed) scope.
    const late = await withScope(() => ({
      later: new Promise<{ acquired: Promise<unknown> }>((resolve) => setTimeout(() => resolve({ acquired: pool.acquire() }), 10)),
    }));
    const error = await rejectionOf((await late.later).acquired);
    expect(error).toBeInstanceOf(ScopeClosedError);
    expect((error as Error).message).toContain('pool "late"');
    expect(fake.createCalls()).toBe(0);
  });

  it('a scope timeout while a create is under way: the created resource goes to the pool, not to the dead task', async () => {
    let finishCreate!: () => void;
    const fake = fakeFactory((f) => ({
      create: () => new Promise<Res>((resolve) => (finishCreate = () => resolve(f.make()))),
    }));
    const pool = newPool(fake.factory, { max: 1 });
    expect(await rejectionOf(withScope(() => pool.acquire(), { timeout: 20 }))).toBeInstanceOf(ScopeTimeoutError);
    finishCreate();
    await flush();
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
  });
});

describe('an acquire served at once from the idle set', () => {
  it('rejects with the reason when its scope is cancelled right after the call; the resource stays in the pool', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    await (await pool.acquire()).release();
    const scope = openScope();
    const acquiring = scope.run(() => pool.acquire());
    const reason = new Error('cancelled at once');
    scope.cancel(reason);
    expect(await rejectionOf(acquiring)).toBe(reason);
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
    await scope.close();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    expect(fake.createCalls()).toBe(1);
    await lease.release();
  });

  it('when refused that way, passes the resource to an acquire queued behind it', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    await (await pool.acquire()).release();
    const scope = openScope();
    const refused = scope.run(() => pool.acquire());
    const behind = pool.acquire(); // no idle resource left and no room: it waits
    scope.cancel(new Error('gone'));
    await rejectionOf(refused);
    const lease = await behind;
    expect(lease.value.id).toBe(1);
    expect(pool.stats()).toMatchObject({ borrowed: 1, pending: 0, available: 0 });
    await lease.release();
    await scope.close();
  });

  it('keeps its turn when the idle resource must be validated first', async () => {
    const checks: number[] = [];
    const fake = fakeFactory(() => ({ validate: (r: Res) => (checks.push(r.id), sleep(10).then(() => true)) }));
    const pool = newPool(fake.factory, { max: 1 });
    await (await pool.acquire()).release();
    const order: string[] = [];
    const first = pool.acquire().then((l) => (order.push(`first:${l.value.id}`), l));
    const second = pool.acquire().then((l) => (order.push(`second:${l.value.id}`), l));
    const a = await first;
    expect(order).toEqual(['first:1']);
    await a.release();
    const b = await second;
    expect(order).toEqual(['first:1', 'second:1']);
    expect(checks).toEqual([1]);
    await b.release();
  });
});

describe('maxWaiting', () => {
  it('rejects at once with PoolFullError once maxWaiting acquires wait', async () => {
    const { pool, holder } = await busyPool({ name: 'full', maxWaiting: 1, acquireTimeoutMs: 10_000 });
    const waiting = pool.acquire();
    const error = await rejectionOf(pool.acquire());
    expect(error).toBeInstanceOf(PoolFullError);
    const full = error as PoolFullError;
    expect(full.code).toBe('ERR_CUSTODIAN_POOL_FULL');
    expect(full.pool).toBe('full');
    expect(full.message).toBe(
      'pool.acquire(): pool "full" is full: 1 acquires already wait for its 1 pooled resources (1 borrowed; maxWaiting is 1)',
    );
    expect(pool.stats().pending).toBe(1);
    expect(holder.released).toBe(false); // it failed without waiting for anything
    await holder.release();
    const lease = await waiting;
    await lease.release();
  });

  it('maxWaiting 0: an acquire that would have to wait fails at once', async () => {
    const { fake, pool, holder } = await busyPool({ maxWaiting: 0, acquireTimeoutMs: 10_000 });
    const error = await rejectionOf(pool.acquire());
    expect(error).toBeInstanceOf(PoolFullError);
    expect((error as PoolFullError).code).toBe('ERR_CUSTODIAN_POOL_FULL');
    expect(pool.stats().pending).toBe(0);
    expect(fake.createCalls()).toBe(1);
    await holder.release();
  });

  it('maxWaiting 0 still serves acquires that an idle resource or room to create covers', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 3, maxWaiting: 0 });
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    expect(leases.map((l) => l.value.id).sort()).toEqual([1, 2, 3]);
    expect(await rejectionOf(pool.acquire())).toBeInstanceOf(PoolFullError);
    const firstId = leases[0]?.value.id;
    await leases[0]?.release();
    const again = await pool.acquire(); // the idle one
    expect(again.value.id).toBe(firstId);
    for (const lease of [again, ...leases]) await lease.release();
  });

  it('a waiter that gave up frees its place', async () => {
    const { pool, holder } = await busyPool({ maxWaiting: 1, acquireTimeoutMs: 10_000 });
    const controller = new AbortController();
    const first = pool.acquire({ signal: controller.signal });
    expect(await rejectionOf(pool.acquire())).toBeInstanceOf(PoolFullError);
    controller.abort();
    await rejectionOf(first);
    const second = pool.acquire();
    expect(pool.stats().pending).toBe(1);
    await holder.release();
    await (await second).release();
  });
});
