/**
 * The current scope follows async work through the library's single AsyncLocalStorage.
 * `withScope` is the everyday entry point; `openScope` is for `await using` and for scopes whose
 * lifetime is not one function call.
 */
import { describe } from '../config/validate.js';
import type { Lease, TrackOptions } from '../lease/lease.js';
import { createLease } from '../lease/acquire.js';
import { boundaryOf, captureSite } from '../report/sites.js';
import type { Scope, ScopeOptions } from './scope.js';
import { createScope, ScopeNode } from './scope-node.js';
import { storage } from './storage.js';
import { runTask } from './task.js';

/**
 * Runs `fn` in a new scope — a child of the current scope, or a root — and closes the scope when
 * `fn` settles, whatever happens: success, throw, abort or timeout. Resolves with `fn`'s result.
 *
 * If `fn` throws, that error is rethrown untouched; release errors never replace it (they are
 * reported and available through `getReleaseErrors(error)`). If only releases fail, the returned
 * promise rejects with their error (a `SuppressedError` chain when several failed).
 *
 * Once the scope is cancelled (its `timeout`, its `signal`, `scope.cancel()`, a cancelled or
 * closing parent, `close()` called on it from outside the task) the answer is the cancellation
 * reason. A scope with a `timeout` or `signal`
 * (its own or an ancestor's) stops waiting at once, closes, and destroys what the still-running
 * body holds; any other scope aborts its `signal` and answers when the body settles (that path
 * saves a promise per task: see docs/decisions.md).
 *
 * @example
 * app.get('/users/:id', (req, res) =>
 *   withScope(async (scope) => {
 *     await using conn = await pool.acquire();
 *     res.json(await conn.value.query('select ...'));
 *   }, { name: 'GET /users/:id', timeout: 5_000 }),
 * );
 */
export function withScope<R>(fn: (scope: Scope) => R, options?: ScopeOptions): Promise<Awaited<R>> {
  if (typeof fn !== 'function') return Promise.reject(new TypeError(`withScope(): fn must be a function, got ${describe(fn)}`));
  let scope: ScopeNode;
  try {
    scope = createScope('withScope()', options, current(), withScope);
  } catch (error) {
    return Promise.reject(error);
  }
  return runTask(scope, fn);
}

/** The scope of the task running now, or `undefined` outside any scope. */
export function currentScope(): Scope | undefined {
  return storage.getStore();
}

/**
 * Opens a scope — a child of the current scope, or a root — without running anything in it. Close
 * it with `await using` or `close()`; run code in it with `scope.run(fn)`.
 *
 * @example
 * await using scope = openScope({ name: 'consumer' });
 * scope.run(() => startConsuming());
 */
export function openScope(options?: ScopeOptions): Scope {
  return createScope('openScope()', options, current(), openScope);
}

/**
 * Opens a root scope, whatever scope is current, from options its caller built and checked itself
 * (an adapter's, made once per integration), named `name` when given: a request is a task of its
 * own even when the server was started inside some scope, and a scope per request must not pay
 * for validating, or even building, the same options each time. For adapters (see internal.ts).
 */
export function openRootScope(options: ScopeOptions, name?: string): Scope {
  return new ScopeNode(options, undefined, captureSite(boundaryOf(options, openRootScope)), name);
}

/**
 * Tracks `value` as a lease of the current scope (see `scope.track`). Outside any scope the lease
 * belongs to no one: if it becomes garbage unreleased, custodian releases it and reports it, and
 * its site is counted for growth detection.
 */
export function track<T>(value: T, options: TrackOptions<T>): Lease<T> {
  const scope = current();
  if (scope !== undefined) return scope.trackAt('track()', value, options, track);
  return createLease('track()', value, options, undefined, captureSite(boundaryOf(options, track)));
}

/** The current scope as custodian keeps it (every scope in the store is a ScopeNode). */
function current(): ScopeNode | undefined {
  return storage.getStore() as ScopeNode | undefined;
}
