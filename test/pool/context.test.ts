/**
 * AsyncLocalStorage context: a waiter resumes in its own scope and its lease belongs to its own
 * scope, whoever released the resource it got; the factory's functions run outside any scope.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { currentScope, inspect, openScope, withScope, type Lease, type Scope } from '../../src/index.js';
import { collectReports, flush, gate, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

/** How many leases the scope holds right now, as inspect() sees it. */
const leasesHeldBy = (scope: Scope) => inspect().scopes.oldest.find((s) => s.id === scope.id)?.leases;

describe('a waiter resumes in its own context', () => {
  it('50 tasks through a pool of 2: each resumes in its own scope and holds its lease in its own scope', async () => {
    allowLeaks(); // half of the tasks leak on purpose
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 2, acquireTimeoutMs: 10_000 });
    const { reports, stop } = collectReports();
    const seen: { task: number; ownScope: boolean; heldByOwn: number | undefined; stillHeld: boolean }[] = [];
    const leases: Lease<Res>[] = [];
    const tasks = Array.from({ length: 50 }, (_, task) =>
      withScope(
        async (scope) => {
          const lease = await pool.acquire();
          leases.push(lease);
          const ownScope = currentScope() === scope;
          const heldByOwn = leasesHeldBy(scope);
          await flush(); // other tasks' scopes close meanwhile: this lease must survive them
          await sleep(1);
          seen.push({ task, ownScope, heldByOwn, stillHeld: !lease.released && currentScope() === scope });
          // Half of the tasks forget to release: their scope gives the resource back.
          if (task % 2 === 0) await lease.release();
        },
        { name: `task ${task}` },
      ),
    );
    await Promise.all(tasks);
    stop();
    expect(seen).toHaveLength(50);
    expect(seen.filter((s) => !s.ownScope || s.heldByOwn !== 1 || !s.stillHeld)).toEqual([]);
    expect(leases.every((l) => l.released)).toBe(true);
    expect(fake.createCalls()).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 2, available: 2, borrowed: 0, pending: 0 });
    // 25 forgotten leases, each reported by its own task's scope.
    const unreleased = reports.filter((r): r is Extract<typeof r, { type: 'unreleased' }> => r.type === 'unreleased');
    expect(unreleased.map((r) => Number(r.scope.name?.slice(5))).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 25 }, (_, i) => 2 * i + 1),
    );
  });

  it("a lease handed over by a release in another scope belongs to the waiter's scope, not the releaser's", async () => {
    allowLeaks(); // the waiter's scope reclaims its lease
    const pool = newPool(fakeFactory().factory, { max: 1 });
    const releaser = openScope({ name: 'releaser' });
    const waiterScope = openScope({ name: 'waiter' });
    const held = await releaser.run(() => pool.acquire());
    const waiting = waiterScope.run(async () => {
      const lease = await pool.acquire();
      return { lease, scope: currentScope() };
    });
    await releaser.run(() => held.release());
    const { lease, scope } = await waiting;
    expect(scope).toBe(waiterScope);
    await releaser.close();
    expect(lease.released).toBe(false); // the releaser's scope ended: the waiter's lease is not its to reclaim
    expect(leasesHeldBy(waiterScope)).toBe(1);
    await waiterScope.close();
    expect(lease.released).toBe(true);
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
  });

  it('a waiter in no scope gets an unscoped lease even when a scope released the resource', async () => {
    allowLeaks(); // the releaser's scope reclaims its lease
    const pool = newPool(fakeFactory().factory, { max: 1 });
    const releaser = openScope();
    const held = await releaser.run(() => pool.acquire());
    const waiting = (async () => {
      const lease = await pool.acquire();
      return { lease, scope: currentScope() };
    })();
    await releaser.close(); // reclaims `held`: the resource goes to the unscoped waiter
    const { lease, scope } = await waiting;
    expect(scope).toBeUndefined();
    expect(held.released).toBe(true);
    expect(lease.released).toBe(false);
    expect(inspect().leases.unscoped).toBeGreaterThanOrEqual(1);
    await lease.release();
  });

  it('a waiter in a scope gets a lease of its scope when the resource was released from no scope', async () => {
    allowLeaks(); // the waiter's scope reclaims its lease
    const pool = newPool(fakeFactory().factory, { max: 1 });
    const held = await pool.acquire();
    const inside = gate();
    let lease: Lease<Res> | undefined;
    const task = withScope(async (scope) => {
      lease = await pool.acquire();
      expect(currentScope()).toBe(scope);
      await inside.promise;
    });
    await flush();
    await held.release();
    await flush();
    expect(lease?.released).toBe(false);
    inside.open();
    await task;
    expect(lease?.released).toBe(true);
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
  });

  it('pool.use() runs fn in the caller scope, also after waiting for a resource', async () => {
    const pool = newPool(fakeFactory().factory, { max: 1 });
    const holder = await pool.acquire();
    const uses = [1, 2, 3].map((n) =>
      withScope(async (scope) =>
        pool.use(async () => {
          const before = currentScope() === scope;
          await sleep(1);
          return before && currentScope() === scope ? n : -n;
        }),
      ),
    );
    await flush();
    expect(pool.stats().pending).toBe(3);
    await holder.release();
    expect(await Promise.all(uses)).toEqual([1, 2, 3]);
  });
});

describe('the factory runs outside any scope', () => {
  it('create, validate, reset and destroy see currentScope() === undefined, also after their own awaits', async () => {
    allowLeaks(); // a scope reclaims a lease, to run reset
    const seen: string[] = [];
    const note = (what: string) => seen.push(`${what}:${currentScope() === undefined ? 'none' : `scope ${currentScope()?.name}`}`);
    let next = 0;
    const pool = newPool<Res>(
      {
        create: async () => {
          note('create');
          await sleep(1);
          note('create after await');
          return { id: ++next };
        },
        validate: async () => {
          note('validate');
          await flush();
          note('validate after await');
          return true;
        },
        reset: async () => {
          note('reset');
          await flush();
          note('reset after await');
        },
        destroy: async () => {
          note('destroy');
          await flush();
          note('destroy after await');
        },
      },
      { name: 'ctx', min: 1, max: 2 },
    );
    await sleep(5); // min: created at start, from no scope
    await withScope(
      async () => {
        const a = await pool.acquire(); // the min one, from the idle set: validated
        const b = await pool.acquire(); // created for this scope's acquire
        await a.release();
        await b.destroy(new Error('broken'));
        await pool.acquire(); // reclaimed (and reset) when the scope closes
      },
      { name: 'task' },
    );
    await pool.close();
    expect(seen.length).toBeGreaterThanOrEqual(14);
    expect(seen.filter((s) => !s.endsWith(':none'))).toEqual([]);
    for (const what of ['create', 'validate', 'reset', 'destroy']) expect(seen).toContain(`${what} after await:none`);
  });

  it('a synchronous factory is called outside the scope too', async () => {
    const scopes: (Scope | undefined)[] = [];
    let next = 0;
    const pool = newPool<Res>(
      {
        create: () => (scopes.push(currentScope()), { id: ++next }),
        validate: () => (scopes.push(currentScope()), true),
        reset: () => void scopes.push(currentScope()),
        destroy: () => void scopes.push(currentScope()),
      },
      { maxUses: 2 },
    );
    await withScope(async () => {
      await (await pool.acquire()).release(); // create, reset
      await (await pool.acquire()).release(); // validate, then retired: destroy
    });
    expect(scopes).toHaveLength(4);
    expect(scopes.every((s) => s === undefined)).toBe(true);
  });
});
