/**
 * The library must not leak itself. A loose bound on purpose: it does not measure (bench/ does),
 * it catches retention — a scope or lease kept per task would cost 150–300 bytes each here.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import { configure, createPool, openScope, track, withScope } from '../src/index.js';
import { sweep } from '../src/registry/sweep.js';
import { sleep, useCleanCustodian } from './helpers.js';

useCleanCustodian({ leaks: 'reclaim', sites: 'sampled' });

async function heapAfterGc(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(5);
  }
  return process.memoryUsage().heapUsed;
}

async function bytesPerIteration(iterations: number, run: (i: number) => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 2000; i++) await run(i); // warm up: JIT, lazily created caches
  const before = await heapAfterGc();
  for (let i = 0; i < iterations; i++) await run(i);
  sweep();
  return ((await heapAfterGc()) - before) / iterations;
}

const N = 40_000;
const noop = () => {};

describe('long loops keep the heap flat', () => {
  it('withScope with a lease the code releases', async () => {
    const perScope = await bytesPerIteration(N, (i) =>
      withScope(async (scope) => {
        await scope.track(i, { release: noop, kind: 'conn' }).release();
      }),
    );
    expect(perScope).toBeLessThan(24);
  });

  it('withScope with a lease the scope reclaims (a leak, reported through onLeak)', async () => {
    allowLeaks();
    let reports = 0;
    configure({ onLeak: () => void reports++ });
    const perScope = await bytesPerIteration(N, (i) => withScope(() => void track(i, { release: noop })));
    expect(reports).toBeGreaterThanOrEqual(N);
    expect(perScope).toBeLessThan(24);
  });

  it('nested scopes, signals and timeouts', async () => {
    const shutdown = new AbortController();
    const perScope = await bytesPerIteration(N / 4, () =>
      withScope(async () => {
        await withScope(async (inner) => void inner.signal.aborted, { timeout: 60_000, signal: shutdown.signal });
      }),
    );
    expect(perScope).toBeLessThan(48);
  });

  it('unscoped leases released by the code', async () => {
    const perLease = await bytesPerIteration(N, async (i) => {
      await track(i, { release: noop }).release();
    });
    expect(perLease).toBeLessThan(24);
  });

  it('pool acquire and release, in scopes, with waiters, leaks and timeouts', async () => {
    allowLeaks(); // one task of three leaks on purpose
    const pool = createPool({ create: () => ({}), destroy: noop }, { max: 2, acquireTimeoutMs: 60_000 });
    try {
      const perTask = await bytesPerIteration(N / 4, async (i) => {
        // Three tasks on two resources: one waits (waiter path), one leaks (reclaimed by its scope),
        // one gives up on its own short timeout while both are held.
        await Promise.all([
          withScope(async () => void (await pool.acquire())),
          withScope(async () => {
            await using _lease = await pool.acquire();
            if (i % 2 === 0) await pool.acquire({ timeout: 1 }).catch(noop);
          }),
          withScope(async () => (await pool.acquire()).release()),
        ]);
      });
      expect(pool.stats()).toMatchObject({ borrowed: 0, pending: 0 });
      expect(perTask).toBeLessThan(48);
    } finally {
      await pool.close();
    }
  });

  it('openScope and close', async () => {
    const perScope = await bytesPerIteration(N, async () => {
      const scope = openScope();
      scope.defer(noop);
      await scope.close();
    });
    expect(perScope).toBeLessThan(24);
  });
});
