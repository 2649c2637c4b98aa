/**
 * Where two of the pool's mechanisms meet: generic-pool's `min` refills with validation, create
 * failures and close(); a validation whose waiter gave up; a scope's abort listeners; the context
 * the pool's timers run in. Each case was found by review, and failed before its fix.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { describe, expect, it } from 'vitest';
import { configure, currentScope, PoolCreateError, withScope, type Lease, type LeakReport, type Scope } from '../../src/index.js';
import { flush, gate as gateOf, never, rejectionOf, settle, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, manualCreate, usePools, type Fake, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

/** Makes a resource, or fails once 50 were made: turns a create storm into a failing test, not a hang. */
function stormGuard(fake: Fake): Res {
  if (fake.created.length >= 50) throw new Error('create storm: 50 resources made');
  return fake.make();
}

describe('validate and min refills', () => {
  it('a validate that always fails, with min refilling, does not spin: the acquire gets a fresh resource', async () => {
    let validates = 0;
    // A storm would starve the event loop and hang the run: past 50 creates, creating fails instead.
    const fake = fakeFactory((f) => ({ create: () => stormGuard(f), validate: () => (validates++, false) }));
    const pool = newPool(fake.factory, { min: 2, max: 2, acquireTimeoutMs: 300 });
    await flush(); // the min fill: resources 1 and 2, idle
    const lease = await pool.acquire();
    // One idle resource failed validation; its destroy refilled min with a resource made while the
    // acquire waited, which is handed out unvalidated. Before the fix: thousands of
    // create-validate-destroy rounds, and the event loop starved.
    expect(validates).toBeLessThanOrEqual(2);
    expect(fake.createCalls()).toBeLessThanOrEqual(4);
    expect(fake.created.map((r) => r.id)).toContain(lease.value.id);
    await lease.release();
  });

  it('a validate that resolves undefined (a ping that answered) keeps the resource, with min set', async () => {
    const fake = fakeFactory((f) => ({ create: () => stormGuard(f), validate: () => Promise.resolve(undefined as unknown as boolean) }));
    const pool = newPool(fake.factory, { min: 2, max: 2 });
    await flush();
    for (let i = 0; i < 5; i++) await (await pool.acquire()).release();
    expect(fake.createCalls()).toBe(2);
    expect(fake.destroyed).toEqual([]);
  });

  it('a resource made for a waiter that gave up is validated when it is handed out later, after idling', async () => {
    const created = manualCreate(() => fake);
    const checked: number[] = [];
    const fake = fakeFactory(() => ({ create: created.create, validate: (r: Res) => (checked.push(r.id), true) }));
    const pool = newPool(fake.factory, { max: 1, validateAfterIdleMs: 20, idleTimeoutMs: 0 });
    await pool.acquire({ timeout: 5 }).catch(() => {}); // gives up while its resource is being made
    created.pending[0]?.succeed(); // it lands in the idle set
    await sleep(40); // idle past validateAfterIdleMs
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    expect(checked).toEqual([1]);
    await lease.release();
  });

  it('a validation whose waiter gave up does not hold back the next acquire while there is room', async () => {
    let first = true;
    const fake = fakeFactory(() => ({ validate: () => (first ? ((first = false), never()) : true) }));
    const pool = newPool(fake.factory, { max: 3, acquireTimeoutMs: 2_000 });
    const warm = await Promise.all([pool.acquire(), pool.acquire()]);
    for (const lease of warm) await lease.release();
    const controller = new AbortController();
    const stuck = pool.acquire({ signal: controller.signal }).catch((error: unknown) => error);
    await flush();
    controller.abort();
    await stuck;
    // One idle resource, room for one more, a validation hanging: served at once.
    const lease = await pool.acquire({ timeout: 300 });
    expect(lease.released).toBe(false);
    await lease.release();
  });
});

describe('create failures and min refills', () => {
  it('a refill backing off does not hold an acquire: its own attempt answers it, and the refill fills min later', async () => {
    let up = false;
    const fake = fakeFactory((f) => ({
      create: async () => {
        await sleep(20);
        if (!up) throw new Error('ECONNREFUSED');
        return f.make();
      },
    }));
    const pool = newPool(fake.factory, { min: 1, max: 2 });
    await sleep(40); // the start-up refill failed (the server was down): it backs off for about 100 ms
    setTimeout(() => (up = true), 30);
    const t0 = performance.now();
    expect(await rejectionOf(pool.acquire())).toBeInstanceOf(PoolCreateError); // its own attempt, still down
    expect(performance.now() - t0).toBeLessThan(1_000);
    // The server is back: the refill's next try fills min, and an acquire gets that resource.
    await settle(
      async () => pool.stats().available,
      (n) => n === 1,
      2_000,
    );
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    await lease.release();
  });
});

describe('close()', () => {
  it('does not refill min while borrowed resources come back to be destroyed', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { min: 3, max: 3 });
    await flush();
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    const closing = pool.close({ timeout: 1_000 });
    for (const lease of leases) await lease.release();
    await closing;
    expect(fake.createCalls()).toBe(3);
    expect(fake.destroyedIds().sort()).toEqual([1, 2, 3]);
  });

  it('destroys a resource whose create outlived the close timeout exactly once, and resolves', async () => {
    const created = manualCreate(() => fake);
    const fake = fakeFactory(() => ({ create: created.create }));
    const pool = newPool(fake.factory, { max: 1 });
    const waiting = pool.acquire().catch((error: unknown) => error);
    await flush();
    const closing = pool.close({ timeout: 20 });
    await waiting;
    await sleep(30); // past the wait for borrowed resources: clear() now waits for the create
    created.pending[0]?.succeed();
    await closing;
    await sleep(10);
    expect(fake.destroyedIds()).toEqual([1]);
  });
});

describe('a scope that is cancelled', () => {
  it('fails its waiting acquires before its abort listeners run: a resource they release goes elsewhere', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    const other = await pool.acquire(); // held outside the task
    const outcome = await withScope(
      async (scope) => {
        scope.signal.addEventListener('abort', () => void other.release());
        const waiting = pool.acquire().then(
          () => 'lease',
          (error: Error) => error.name,
        );
        setTimeout(() => scope.cancel(), 5);
        return waiting;
      },
      { timeout: 1_000 },
    ).catch((error: Error) => `withScope: ${error.name}`);
    await flush();
    expect(outcome).toBe('withScope: AbortError');
    expect(fake.destroyed).toEqual([]); // not handed to the cancelled task and destroyed with it
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0 });
  });
});

describe("the pool's timers", () => {
  it("run in no request's context: a held-too-long report sees no scope and no app store", async () => {
    const app = new AsyncLocalStorage<string>();
    const seen: { type: string; scope: unknown; app: unknown }[] = [];
    configure({ onLeak: (report: LeakReport) => void seen.push({ type: report.type, scope: currentScope(), app: app.getStore() }) });
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1, leakThresholdMs: 20 });
    // A request arms the pool's timer; a background job (no scope) holds a resource too long.
    await app.run('request A', () => withScope(async () => (await pool.acquire()).release()));
    const held = await app.run('job B', () => pool.acquire());
    await sleep(60);
    await held.release();
    expect(seen.map((s) => s.type)).toContain('held-too-long');
    for (const s of seen.filter((x) => x.type === 'held-too-long')) expect(s).toMatchObject({ scope: undefined, app: undefined });
  });

  it("create runs in no request's context either: an app store does not follow the connection", async () => {
    const app = new AsyncLocalStorage<string>();
    let storeInCreate: unknown = 'not called';
    const fake = fakeFactory((f) => ({ create: () => ((storeInCreate = app.getStore()), f.make()) }));
    const pool = newPool(fake.factory);
    await app.run('request A', () => withScope(async () => (await pool.acquire()).release()));
    expect(storeInCreate).toBeUndefined();
  });
});

describe('counting a validation in progress', () => {
  it('maxWaiting: 0 does not refuse an acquire while another one validates and there is room', async () => {
    const verdict = gateOf<boolean>();
    let slow = false;
    const fake = fakeFactory(() => ({ validate: () => (slow ? verdict.promise : true) }));
    const pool = newPool(fake.factory, { max: 2, maxWaiting: 0 });
    await (await pool.acquire()).release(); // one idle resource
    slow = true;
    const first = pool.acquire(); // validates resource 1
    await flush();
    const second = pool.acquire(); // room for one more: resource 2 is made, not refused
    await flush();
    verdict.open(true);
    // First come, first served: the first acquire takes the resource that came first.
    expect([(await first).value.id, (await second).value.id]).toEqual([2, 1]);
    expect(fake.createCalls()).toBe(2);
    await (await first).release();
    await (await second).release();
  });
});

describe('refills that settle together', () => {
  /** Creates 1..3 succeed at once; later ones wait for the test to settle them. */
  function heldCreates(fake: () => Fake) {
    const pending: { id: number; ok: () => void; fail: () => void }[] = [];
    let n = 0;
    const create = (): Res | Promise<Res> => {
      if (++n <= 3) return fake().make();
      const id = n;
      return new Promise<Res>((resolve, reject) =>
        pending.push({ id, ok: () => resolve(fake().make()), fail: () => reject(new Error(`refused ${id}`)) }),
      );
    };
    return { create, pending };
  }

  it('a waiter is served by a refill that worked, when another failed in the same turn', async () => {
    const creates = heldCreates(() => fake);
    const fake = fakeFactory(() => ({ create: creates.create }));
    const pool = newPool(fake.factory, { min: 3, max: 3, acquireTimeoutMs: 2_000, idleTimeoutMs: 0 });
    await flush();
    const [kept, second, third] = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    const waiting = pool.acquire();
    await flush();
    await third.destroy();
    await second.destroy(); // two refills; the waiter's request waits on them
    await flush();
    const [a, b] = creates.pending.splice(0);
    a?.ok();
    b?.fail(); // same turn
    const lease = await waiting;
    expect(lease.value.id).toBe(4);
    await lease.release();
    await kept.release();
  });

  it('no PoolCreateError while a refill that worked sits idle', async () => {
    const creates = heldCreates(() => fake);
    const fake = fakeFactory(() => ({ create: creates.create }));
    const pool = newPool(fake.factory, { min: 3, max: 3, acquireTimeoutMs: 2_000, idleTimeoutMs: 0 });
    await flush();
    const leases = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    let got: Lease<Res> | undefined;
    const waiting = pool.acquire().then(
      (lease) => ((got = lease), lease.value.id),
      (error: Error) => error.name,
    );
    await flush();
    for (const lease of leases) await lease.destroy();
    await flush();
    creates.pending.shift()?.fail(); // the waiter's own attempt fails
    await sleep(5);
    const [a, b, ...rest] = creates.pending.splice(0);
    a?.fail();
    for (const r of rest) r.fail();
    b?.ok(); // one refill works, in the same turn as the failures
    expect(typeof (await waiting)).toBe('number');
    await got?.release();
  });
});

describe('a cancelled parent scope', () => {
  it("fails its children's waiting acquires before its abort listeners run", async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    let parent: Scope | undefined;
    const outcome = withScope(
      async (scope) => {
        parent = scope;
        const held = await pool.acquire();
        scope.signal.addEventListener('abort', () => void held.release());
        return withScope(async () => (await pool.acquire()).value.id, { timeout: 5_000 });
      },
      { timeout: 5_000 },
    ).catch((error: Error) => error.name);
    await sleep(5);
    parent?.cancel();
    expect(await outcome).toBe('AbortError');
    await flush();
    expect(fake.destroyed).toEqual([]); // the released resource was not handed to the child and destroyed with it
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0 });
  });
});
