/**
 * Deep and wide: every walk over open scopes and live leases (the periodic sweep, cancellation,
 * closing a parent over open children, inspect()) is iterative, so a consumer that nests tens of
 * thousands of scopes, or a server with a hundred thousand in flight, cannot crash the process.
 * How long a sweep blocks the event loop is measured in bench/ (npm run bench -- --only sweep).
 */
import { setImmediate as tick } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { configure, inspect, openScope, track, withScope, type Scope } from '../src/index.js';
import { sweep } from '../src/registry/sweep.js';
import { allowLeaksInEveryTest, collectReports, openScopeCount, useCleanCustodian } from './helpers.js';

useCleanCustodian({ leaks: 'reclaim' });
allowLeaksInEveryTest();

/** Deeper than any recursive walk survives with Node's default stack (about 11,000 frames). */
const DEPTH = 30_000;

/** Opens `depth` scopes, each a child of the one before, and returns the deepest. */
function chain(root: Scope, depth: number): Scope {
  let scope = root;
  for (let i = 1; i < depth; i++) scope = scope.run(() => openScope({ name: `level ${i}` }));
  return scope;
}

describe('a consumer that handles each message in a scope and recurses into the next', () => {
  it(`runs ${DEPTH.toLocaleString('en')} levels deep with the sweep and inspect() running all along`, async () => {
    configure({ staleScopeMs: 60_000, growthIntervalMs: 1 });
    let handled = 0;
    let deepest = 0;
    const consume = (): Promise<void> =>
      withScope(
        async () => {
          track(handled, { release: () => {}, kind: 'message' }).release();
          await tick();
          handled++;
          if (handled % 2_000 === 0) {
            sweep();
            deepest = Math.max(deepest, inspect().scopes.open);
          }
          if (handled < DEPTH) await consume();
        },
        { name: 'message' },
      );
    await consume();
    expect(handled).toBe(DEPTH);
    expect(deepest).toBe(DEPTH);
    expect(openScopeCount()).toBe(0);
  });
});

describe('cancelling a deep tree', () => {
  it('cancels every level, aborting each signal, and the levels close from the deepest up', async () => {
    const root = openScope({ name: 'root' });
    const deepest = chain(root, DEPTH);
    const aborted: number[] = [];
    deepest.signal.addEventListener('abort', () => aborted.push(deepest.id));
    root.cancel(new Error('shutting down'));
    expect(aborted).toEqual([deepest.id]);
    expect(deepest.signal.reason).toEqual(new Error('shutting down'));
    const closedOrder: number[] = [];
    deepest.defer(() => closedOrder.push(DEPTH));
    deepest.parent?.defer(() => closedOrder.push(DEPTH - 1));
    await root.close();
    expect(closedOrder).toEqual([DEPTH, DEPTH - 1]);
    expect(deepest.state).toBe('closed');
    expect(openScopeCount()).toBe(0);
  });

  it('an aborted withScope over a deep chain of running tasks answers and closes every level', async () => {
    const controller = new AbortController();
    let opened = 0;
    const nest = (depth: number): Promise<void> =>
      withScope(async () => {
        opened++;
        await tick(); // nested asynchronously, as a consumer does (not 10,000 levels on one stack)
        if (depth > 1) await nest(depth - 1);
        else {
          controller.abort(new Error('shutting down'));
          await new Promise(() => {}); // never settles: only the cancellation ends it
        }
      });
    const outcome = withScope(() => nest(10_000), { signal: controller.signal }).catch((error: unknown) => error);
    expect(await outcome).toEqual(new Error('shutting down'));
    expect(opened).toBe(10_000);
    expect(openScopeCount()).toBe(0);
  });
});

describe('closing a parent over a deep chain of open children', () => {
  it('closes every abandoned level (deepest first) and reports what each held', async () => {
    const { reports, stop } = collectReports();
    const root = openScope({ name: 'root' });
    const deepest = chain(root, DEPTH);
    deepest.track('conn', { release: () => {}, kind: 'connection' });
    await root.close();
    stop();
    expect(openScopeCount()).toBe(0);
    const unreleased = reports.filter((r) => r.type === 'unreleased');
    expect(unreleased).toHaveLength(1);
    expect(unreleased[0]).toMatchObject({ scope: { id: deepest.id }, cancelled: false });
  });
});

describe('inspect() on a hundred thousand open scopes', () => {
  it('returns at most maxScopes of them, the oldest, and says how many it left out', async () => {
    const root = openScope({ name: 'root' });
    const flat: Scope[] = [];
    for (let i = 0; i < 70_000; i++) flat.push(root.fork({ name: 'request' }));
    chain(root.fork({ name: 'consumer' }), DEPTH - 1);
    const snapshot = inspect({ maxScopes: 50 });
    expect(snapshot.scopes.open).toBe(100_000);
    expect(snapshot.scopes.oldest).toHaveLength(50);
    expect(snapshot.scopes.omitted).toBe(100_000 - 50);
    expect(snapshot.scopes.oldest[0]).toMatchObject({ id: root.id, name: 'root' });
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot);
    await root.close();
    expect(openScopeCount()).toBe(0);
  });
});
