/**
 * Property tests: random programs against a pool (see ./pool-program.ts) keep its invariants.
 *
 * After every operation, once everything that can run has run:
 *  1. stats() adds up: available + borrowed <= size <= max, and size === available + borrowed
 *     when nothing is being created or validated; borrowed is the number of leases handed out
 *     whose return has not finished; pending is the number of acquires not settled;
 *  2. no resource is out twice; none is handed out, validated or reset after it was destroyed or
 *     while a lease holds it; every one handed out was made by the factory; destroy runs at most
 *     once per resource; a resource is handed out at most maxUses times and, with a reset, only
 *     after its reset succeeded; one that validate refused, whose reset failed, that a lease
 *     destroyed or that a timed-out task held is never handed out again and is destroyed (by the
 *     time lease.destroy() or the scope's reclaim resolves); the factory runs outside any scope;
 *  3. an acquire that gave up (its signal aborted, its timeout passed, its scope was cancelled or
 *     closed) is rejected at once with that reason and never gets a lease; every rejection has a
 *     cause the program gave (PoolFullError only when maxWaiting acquires wait, PoolCreateError only
 *     after a create failed and with nothing borrowed);
 *  4. a lease stays held until the code or its scope gives it back; a settled scope task gave back
 *     everything it held (and waited for it), and answers with its cancellation reason if cancelled;
 * and at the end, with every task ended and every factory call finished: borrowed 0, pending 0,
 * size === available === created - destroyed; after close(), every resource was destroyed exactly
 * once and acquire() fails with PoolClosedError.
 *
 * Liveness, in a test of its own (so that a failure there does not hide the above): no acquire
 * waits uncovered while a resource sits idle, or while nothing is borrowed or under way.
 */
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { createPool, type Lease } from '../../src/index.js';
import { allowLeaksInEveryTest, flush, PROPERTY_RUNS, useCleanCustodian } from '../helpers.js';
import { poolProgramArb, runPoolProgram, showPoolProgram, type PoolLike, type PoolProgram, type RunOptions } from './pool-program.js';

useCleanCustodian({ leaks: 'reclaim', warningThrottleMs: 0, disposeTimeoutMs: 0 });
allowLeaksInEveryTest();

// Scopes that end without releasing are reported as leaks (process warnings): thousands, on purpose.
let emitWarning: MockInstance<typeof process.emitWarning>;
beforeEach(() => {
  emitWarning = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  emitWarning.mockRestore();
});

// Acquire and scope timeouts run on fake time, advanced only by the programs; setImmediate stays
// real (the interpreter settles with it), and so does setInterval (custodian's sweep).
beforeAll(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});
afterAll(() => {
  vi.useRealTimers();
});

function poolProperty(options: RunOptions = {}) {
  return fc.asyncProperty(poolProgramArb, fc.scheduler(), async (program: PoolProgram, s: fc.Scheduler) => {
    const { violations, trace } = await runPoolProgram(program, s, options);
    if (violations.length > 0) {
      throw new Error(
        [
          `${violations.length} violation(s):`,
          ...violations.slice(0, 8).map((v) => `  ${v}`),
          'program:',
          showPoolProgram(program),
          'trace (last 60 events):',
          ...trace.slice(-60).map((line) => `  ${line}`),
        ].join('\n'),
      );
    }
  });
}

describe('random pool programs', () => {
  it('keep the pool invariants at every step and at the end', async () => {
    await fc.assert(poolProperty({ liveness: false }), { numRuns: PROPERTY_RUNS });
  }, 300_000); // room for shrinking a failure

  // Its own test, so that a failure here does not hide the safety invariants above.
  it('leave no acquire waiting while a resource sits idle or nothing could serve it', async () => {
    await fc.assert(poolProperty({ liveness: true }), { numRuns: PROPERTY_RUNS });
  }, 300_000);

  // Its own test, so that a failure here does not hide the invariants above.
  it('leave stats() empty once close() resolved', async () => {
    await fc.assert(
      fc.asyncProperty(poolProgramArb, fc.scheduler(), async (program: PoolProgram, s: fc.Scheduler) => {
        const { violations, closeStats } = await runPoolProgram(program, s);
        if (violations.length > 0) return; // the property above reports those
        const counts =
          closeStats === undefined
            ? undefined
            : { size: closeStats.size, available: closeStats.available, borrowed: closeStats.borrowed, pending: closeStats.pending };
        if (counts?.size !== 0 || counts.available !== 0 || counts.borrowed !== 0 || counts.pending !== 0) {
          throw new Error(
            `stats() after close() resolved: ${JSON.stringify(counts)}, expected all 0\nprogram:\n${showPoolProgram(program)}`,
          );
        }
      }),
      { numRuns: PROPERTY_RUNS },
    );
  }, 300_000);

  // The checker must be able to fail: the same property against pools broken on purpose.
  const broken: [string, (pool: PoolLike) => PoolLike, RegExp][] = [
    [
      'stats() that counts one lease too many',
      (pool) => ({
        acquire: (o) => pool.acquire(o),
        close: () => pool.close(),
        stats: () => ({ ...pool.stats(), borrowed: pool.stats().borrowed + (pool.stats().borrowed > 0 ? 1 : 0) }),
      }),
      /borrowed is \d+, but \d+ leases are out/,
    ],
    [
      'an acquire that ignores its signal',
      (pool) => ({ acquire: (o) => pool.acquire(o?.signal === undefined ? o : {}), close: () => pool.close(), stats: () => pool.stats() }),
      /gave up \(its signal aborted\)/,
    ],
  ];
  for (const [name, wrap, message] of broken) {
    it(`the checker notices ${name}`, async () => {
      const result = await fc.check(poolProperty({ wrap, liveness: false }), { numRuns: 300, seed: 1 });
      expect(result.failed).toBe(true);
      expect(String((result.errorInstance as Error | null)?.message)).toMatch(message);
    }, 60_000);
  }
});

describe('regressions: bugs found by the properties', () => {
  // Was a bug: generic-pool's clear() destroys the idle
  // resources but leaves them in its idle deque, and stats() passed generic-pool's `available`
  // through. After close() resolved: size 0, available 1. Shrunk counterexample of the close
  // property: a pool with min 1 and any program.
  it('stats() after close() shows no idle resources', async () => {
    const pool = createPool({ create: () => ({}), destroy: () => undefined }, { min: 1, max: 1 });
    await flush();
    expect(pool.stats()).toMatchObject({ size: 1, available: 1 });
    await pool.close();
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0, pending: 0 });
  });

  // Was a bug: an acquire waited while a resource sat idle. Its request got a failed create, and
  // something was borrowed, so #createFailed let the waiter wait without asking again; generic-pool's
  // min refill then made a resource that stayed idle until the borrowed one came back. A successful
  // create now asks for the waiters a failure left uncovered (after the turn in which generic-pool
  // shelves the new resource: hence two flushes). Shrunk counterexample of the liveness property:
  // max 2, min 2, creates #1 and #3 fail, two acquires.
  it('an acquire does not wait while a resource sits idle after a failed create', async () => {
    let n = 0;
    const pool = createPool(
      {
        create: () => {
          n++;
          if (n === 1 || n === 3) throw new Error(`create #${n} failed`);
          return { id: n };
        },
        destroy: () => undefined,
      },
      { min: 2, max: 2, acquireTimeoutMs: 0 },
    );
    await flush(); // the min fill: create #1 fails, #2 makes { id: 2 }
    const first = await pool.acquire();
    let second: Lease<{ id: number }> | undefined;
    const waiting = pool.acquire().then((lease) => (second = lease)); // create #3 fails, then the min refill makes { id: 4 }
    await flush();
    await flush();
    const stats = pool.stats();
    await first.release();
    await waiting;
    await second?.release();
    await pool.close();
    expect(stats).toMatchObject({ size: 2, borrowed: 2, available: 0, pending: 0 });
  });

  // Was a bug: a waiter held back by a failed create waited while a resource sat idle. The min fill
  // ran four creates; #2 failed after the third acquire queued (holding it back), then #1 finished:
  // generic-pool shelved that resource with no request waiting and told nobody. Shrunk
  // counterexample of the liveness property: max 4, min 4, creates #1 and #2 slow, #2 fails.
  it('a waiter held back by a failed create takes a resource that a create for min made', async () => {
    const slow: { resolve: (v: { id: number }) => void; reject: (e: Error) => void }[] = [];
    let n = 0;
    const pool = createPool(
      {
        create: () => {
          n++;
          if (n <= 2) return new Promise<{ id: number }>((resolve, reject) => slow.push({ resolve, reject }));
          return { id: n };
        },
        destroy: () => undefined,
      },
      { min: 4, max: 4, acquireTimeoutMs: 0 },
    );
    await flush();
    const a = await pool.acquire();
    const b = await pool.acquire();
    let third: Lease<{ id: number }> | undefined;
    const waiting = pool.acquire().then((lease) => (third = lease));
    await flush();
    slow[1]?.reject(new Error('create #2 failed'));
    await flush();
    slow[0]?.resolve({ id: 1 });
    await flush();
    await flush();
    const served = third?.value.id;
    await a.release();
    await b.release();
    await waiting;
    await third?.release();
    await pool.close();
    expect(served).toBe(1);
  });

  // Guards a bug the safety property found (about one CI run in two): the pool read generic-pool's
  // count of creates under way, which counts a finished create twice for a few ticks, and the room
  // it computed let one resource more than max live while another was still being destroyed. The
  // pool counts its creates itself now. This workload did not hit that window before the fix; the
  // property (14 CI-sized runs clean after it) is the proof, this is the cheap tripwire.
  it('never has more than max resources live while creates finish and destroys are under way', async () => {
    let live = 0;
    let peak = 0;
    const pool = createPool(
      {
        create: async () => {
          live++;
          peak = Math.max(peak, live);
          await new Promise((r) => setImmediate(r));
          return {};
        },
        destroy: async () => {
          // Longer than a create (this file fakes setTimeout): two turns.
          for (let turn = 0; turn < 2; turn++) await new Promise((r) => setImmediate(r));
          live--;
        },
      },
      { max: 3, acquireTimeoutMs: 0 },
    );
    const task = async (i: number) => {
      const lease = await pool.acquire();
      await new Promise((r) => setImmediate(r));
      if (i % 3 === 0) await lease.destroy();
      else await lease.release();
    };
    await Promise.all(Array.from({ length: 300 }, (_, i) => task(i)));
    await pool.close();
    expect(peak).toBeLessThanOrEqual(3);
  });
});
