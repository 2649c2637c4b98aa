/**
 * Isolation: many tasks run at once, interleaving their awaits, and each one only ever sees and
 * releases its own scope and resources.
 *
 * Every task (and its nested children, some running alongside their parent's own steps) checks
 * after every await that `currentScope()` is its own scope, acquires leases both with
 * `scope.track` and with the context-based `track()`, and when its scope settles checks that the
 * scope released exactly the task's own leases (those it did not release itself), newest first,
 * while that scope was closing. At the end nothing is open or outstanding.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { currentScope, inspect, track, withScope, type Lease, type Scope } from '../../src/index.js';
import { allowLeaksInEveryTest, PROPERTY_RUNS, useCleanCustodian } from '../helpers.js';

useCleanCustodian({ leaks: 'reclaim', warningThrottleMs: 0 });
allowLeaksInEveryTest();

/** How a task waits: a microtask, setImmediate, or a timer of 0-3 ms. */
type Pause = 'null' | 'immediate' | 0 | 1 | 2 | 3;

type Step =
  | { readonly t: 'pause'; readonly how: Pause }
  | { readonly t: 'track'; readonly via: 'scope' | 'context'; readonly asyncRelease: Pause | null }
  | { readonly t: 'release'; readonly target: number }
  | { readonly t: 'child'; readonly plan: Plan; readonly alongside: boolean };

interface Plan {
  readonly steps: readonly Step[];
}

const pauseArb: fc.Arbitrary<Pause> = fc.constantFrom<Pause>('null', 'null', 'immediate', 'immediate', 0, 1, 2, 3);

function planArb(depth: number): fc.Arbitrary<Plan> {
  const steps: fc.WeightedArbitrary<Step>[] = [
    { weight: 4, arbitrary: fc.record({ t: fc.constant('pause' as const), how: pauseArb }) },
    {
      weight: 4,
      arbitrary: fc.record({
        t: fc.constant('track' as const),
        via: fc.constantFrom('scope' as const, 'context' as const),
        asyncRelease: fc.option(pauseArb, { nil: null }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('release' as const), target: fc.nat(5) }) },
  ];
  if (depth < 3) {
    steps.push({
      weight: 1,
      arbitrary: fc.record({ t: fc.constant('child' as const), plan: planArb(depth + 1), alongside: fc.boolean() }),
    });
  }
  return fc.record({ steps: fc.array(fc.oneof(...steps), { minLength: 2, maxLength: 8 }) });
}

interface World {
  /** How one await of a task is performed. */
  pause(how: Pause): Promise<unknown>;
  readonly violations: string[];
  /** Scopes that settled, for the final check. */
  settled: number;
  nextTask: number;
  /** True while the code itself calls lease.release(). */
  byCode: boolean;
}

const realPause = (how: Pause): Promise<unknown> => {
  if (how === 'null') return Promise.resolve(null);
  if (how === 'immediate') return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => setTimeout(resolve, how));
};

interface Held {
  readonly value: { readonly task: string; readonly n: number };
  readonly lease: Lease<{ readonly task: string; readonly n: number }>;
  releasedByCode: boolean;
}

/** Runs one task (a withScope) following `plan`; never rejects: problems go to `world.violations`. */
async function runTask(world: World, plan: Plan, parent: Scope | undefined): Promise<void> {
  const name = `task ${++world.nextTask}`;
  const held: Held[] = [];
  const releasedByScope: Held['value'][] = [];
  let own: Scope | undefined;
  const fail = (message: string) => void world.violations.push(`${name}: ${message}`);
  const checkCurrent = (where: string) => {
    const current = currentScope();
    if (current !== own) fail(`${where}: currentScope() is #${String(current?.id)}, expected #${String(own?.id)}`);
  };
  try {
    await withScope(async (scope) => {
      own = scope;
      checkCurrent('start');
      if (scope.parent !== parent) fail(`parent is #${String(scope.parent?.id)}, expected #${String(parent?.id)}`);
      const alongside: Promise<void>[] = [];
      for (const step of plan.steps) {
        switch (step.t) {
          case 'pause':
            await world.pause(step.how);
            checkCurrent(`after pause ${String(step.how)}`);
            break;
          case 'track': {
            const value = { task: name, n: held.length };
            const release = (v: typeof value) => {
              if (v !== value) fail(`release of #${value.n} got ${JSON.stringify(v)}`);
              if (world.byCode) return undefined;
              // Released by a scope: it must be this task's scope, while it closes.
              if (scope.state !== 'closing') fail(`#${value.n} was released by a scope while its own is ${scope.state}`);
              releasedByScope.push(v);
              return step.asyncRelease === null ? undefined : world.pause(step.asyncRelease);
            };
            const options = { release, kind: 'isolation resource' };
            const lease = step.via === 'scope' ? scope.track(value, options) : track(value, options);
            held.push({ value, lease, releasedByCode: false });
            break;
          }
          case 'release': {
            const h = held[step.target % Math.max(1, held.length)];
            if (h === undefined || h.lease.released) break;
            world.byCode = true;
            try {
              void h.lease.release();
            } finally {
              world.byCode = false;
            }
            h.releasedByCode = true;
            break;
          }
          case 'child': {
            const child = runTask(world, step.plan, scope);
            if (step.alongside) alongside.push(child);
            else await child;
            checkCurrent('after starting or awaiting a child');
            break;
          }
        }
      }
      await Promise.all(alongside);
      checkCurrent('after the children that ran alongside');
    });
  } catch (error) {
    fail(`withScope rejected: ${String(error)}`);
  }
  world.settled++;
  // The scope released exactly this task's leases that the code did not release, newest first.
  const expected = held
    .filter((h) => !h.releasedByCode)
    .map((h) => h.value)
    .reverse();
  if (releasedByScope.length !== expected.length || releasedByScope.some((v, i) => v !== expected[i])) {
    fail(`its scope released ${JSON.stringify(releasedByScope.map((v) => v.n))}, expected ${JSON.stringify(expected.map((v) => v.n))}`);
  }
  for (const h of held) if (!h.lease.released) fail(`lease #${h.value.n} is still held after its scope settled`);
  if (own?.state !== 'closed') fail(`its scope is ${String(own?.state)} after withScope settled`);
}

function countTasks(plan: Plan): number {
  return 1 + plan.steps.reduce((n, s) => n + (s.t === 'child' ? countTasks(s.plan) : 0), 0);
}

describe('isolation of concurrent tasks', () => {
  it('1,000 concurrent tasks each see only their own scope and release only their own resources', async () => {
    const plans = fc.sample(planArb(1), { numRuns: 1000, seed: 20_260_101 });
    const world: World = { pause: realPause, violations: [], settled: 0, nextTask: 0, byCode: false };
    expect(currentScope()).toBeUndefined();
    await Promise.all(plans.map((plan) => runTask(world, plan, undefined)));
    expect(currentScope()).toBeUndefined();
    expect(world.violations.slice(0, 20)).toEqual([]);
    expect(world.settled).toBe(plans.reduce((n, p) => n + countTasks(p), 0));
    const snapshot = inspect();
    expect(snapshot.scopes.open).toBe(0);
    expect(snapshot.leases.outstanding).toBe(0);
  });

  it('random interleavings (fast-check scheduler) keep every task in its own scope', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.array(planArb(1), { minLength: 2, maxLength: 8 }), async (s, plans) => {
        // Every await is a task of the scheduler, released in an order fast-check picks (and shrinks);
        // `null` stays an unscheduled microtask, so both kinds interleave.
        const world: World = {
          pause: (how) => (how === 'null' ? Promise.resolve(null) : s.schedule(Promise.resolve(how), String(how))),
          violations: [],
          settled: 0,
          nextTask: 0,
          byCode: false,
        };
        await s.waitFor(Promise.all(plans.map((plan) => runTask(world, plan, undefined))));
        if (world.violations.length > 0) throw new Error(`${world.violations.join('\n')}\n${s.report().length} scheduled steps`);
        const snapshot = inspect();
        if (snapshot.scopes.open !== 0 || snapshot.leases.outstanding !== 0) {
          throw new Error(`${snapshot.scopes.open} scopes open, ${snapshot.leases.outstanding} leases outstanding at the end`);
        }
        if (world.settled !== plans.reduce((n, p) => n + countTasks(p), 0)) throw new Error(`only ${world.settled} tasks settled`);
      }),
      { numRuns: PROPERTY_RUNS },
    );
  }, 300_000); // room for shrinking a failure
});
