/**
 * The pool's adapter API (src/internal.ts): `lendAbove`, an acquire by callback, and
 * `HOOKS_IN_ROOT`, a factory that switches to the root context itself. Adapters' statements run on
 * both: what they promise must hold whatever path the acquire takes (warm, generic-pool's idle set,
 * queued, refused).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { configure, openScope, withScope, type Lease } from '../../src/index.js';
import { HOOKS_IN_ROOT, lendAbove } from '../../src/internal.js';
import { flush, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, usePools, type Res } from './fake.js';

useCleanCustodian();
const newPool = usePools();

/** lendAbove as a promise, recording whether a callback ran before it returned. */
function lend(pool: Parameters<typeof lendAbove<Res>>[0]): { lease: Promise<Lease<Res>>; early: () => boolean } {
  let returned = false;
  let early = false;
  const lease = new Promise<Lease<Res>>((resolve, reject) => {
    lendAbove(
      pool,
      lend,
      (l) => {
        if (!returned) early = true;
        resolve(l);
      },
      (e: unknown) => {
        if (!returned) early = true;
        reject(e);
      },
    );
    returned = true;
  });
  return { lease, early: () => early };
}

describe('lendAbove', () => {
  it('lends a warm resource, one from the idle set and a queued one, never before it returns', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    await withScope(async () => {
      const first = lend(pool); // creates
      const a = await first.lease;
      expect(a.value).toBe(fake.created[0]);
      const second = lend(pool); // queued behind a
      await flush();
      await a.release(); // served inside this release
      const b = await second.lease;
      expect(b.value).toBe(fake.created[0]);
      await b.release();
      const third = lend(pool); // warm
      const c = await third.lease;
      await c.release();
      expect([first.early(), second.early(), third.early()]).toEqual([false, false, false]);
      expect(fake.createCalls()).toBe(1);
    });
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1, pending: 0 });
  });

  it('records the site above the boundary: the caller of the function passed', async () => {
    configure({ sites: 'always' });
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    await withScope(async () => {
      const lease = await lend(pool).lease;
      expect(lease.site).toMatch(/adapter-api\.test\.ts:\d+:\d+$/);
      await lease.release();
    });
  });

  it('refuses in a closed scope by fail, a microtask later, and lends nothing', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    const scope = openScope({ name: 'ended' });
    const inScope = scope.run(() => AsyncLocalStorage.snapshot()); // code of the scope that runs on after its end
    await scope.close();
    const attempt = inScope(() => lend(pool));
    await expect(attempt.lease).rejects.toThrow(/"ended"/);
    expect(attempt.early()).toBe(false);
    expect(pool.stats()).toMatchObject({ borrowed: 0, pending: 0 });
  });

  it('fails a queued lend when its scope ends, and its wait leaves the queue', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    const holder = await pool.acquire();
    const scope = openScope({ name: 'short' });
    const attempt = scope.run(() => lend(pool));
    await flush();
    expect(pool.stats().pending).toBe(1);
    await scope.close();
    await expect(attempt.lease).rejects.toThrow();
    expect(pool.stats().pending).toBe(0);
    await holder.release();
    expect(pool.stats()).toMatchObject({ borrowed: 0, available: 1 });
  });

  it('property: any mix of lends and acquires on a small pool lends each resource to one holder at a time, and all come back', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ byLend: fc.boolean(), holdMs: fc.integer({ min: 0, max: 3 }) }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 3 }),
        async (tasks, max) => {
          const fake = fakeFactory();
          const pool = newPool(fake.factory, { max });
          const holding = new Set<Res>();
          let overlap = false;
          await Promise.all(
            tasks.map((t) =>
              withScope(async () => {
                const lease = t.byLend ? await lend(pool).lease : await pool.acquire();
                if (holding.has(lease.value)) overlap = true;
                holding.add(lease.value);
                await sleep(t.holdMs);
                holding.delete(lease.value);
                await lease.release();
              }),
            ),
          );
          expect(overlap).toBe(false);
          expect(pool.stats()).toMatchObject({ borrowed: 0, pending: 0 });
          expect(fake.createCalls()).toBeLessThanOrEqual(max);
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('HOOKS_IN_ROOT', () => {
  const als = new AsyncLocalStorage<string>();

  async function contextsSeen(inRoot: boolean): Promise<{ validate: unknown; reset: unknown }> {
    const seen: { validate: unknown; reset: unknown } = { validate: 'not called', reset: 'not called' };
    const fake = fakeFactory(() => ({
      validate: () => {
        seen.validate = als.getStore();
        return true;
      },
      reset: () => {
        seen.reset = als.getStore();
      },
    }));
    const factory = inRoot ? { ...fake.factory, [HOOKS_IN_ROOT]: true as const } : fake.factory;
    const pool = newPool(factory, { max: 1 });
    await (await pool.acquire()).release();
    await als.run('request', async () => {
      const lease = await pool.acquire();
      await lease.release();
    });
    return seen;
  }

  it('without it, validate and reset run in the root context', async () => {
    expect(await contextsSeen(false)).toEqual({ validate: undefined, reset: undefined });
  });

  it("with it, they run in the caller's context: the factory switches itself where it must", async () => {
    expect(await contextsSeen(true)).toEqual({ validate: 'request', reset: 'request' });
  });
});
