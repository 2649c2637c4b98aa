/**
 * What a user holds of a pool: the `Pool` interface, its stats and the reasons it destroys a
 * resource. The machinery is `ResourcePool` (resource-pool.ts); `createPool` makes one.
 */
import type { Lease } from '../lease/lease.js';
import type { AcquireOptions, PoolCloseOptions } from './options.js';

import type { PoolStats } from '../registry/inspect.js';

export type { PoolStats };

/** Why a pool destroyed a resource, as the `custodian:pool:destroy` event says. */
export type PoolDestroyReason =
  'destroyed' | 'evicted' | 'max-uses' | 'max-lifetime' | 'idle' | 'validate-failed' | 'reset-failed' | 'closed';

/**
 * A pool of resources whose leases belong to the scope that acquired them. Create one with
 * `createPool`.
 *
 * @example
 * const pool = createPool({ create: () => connect(url), destroy: (c) => c.close() }, { name: 'db', max: 10 });
 * await withScope(async () => {
 *   await using conn = await pool.acquire();
 *   await conn.value.query('select 1');
 * });
 */
export interface Pool<T> extends AsyncDisposable {
  /** The pool's name, as errors, reports and events show it. */
  readonly name: string;

  /**
   * Borrows a resource. The lease belongs to the current scope: give it back with `release()` or
   * `await using`, or the scope reclaims it at its end and reports the leak with this line.
   * Rejects with `PoolTimeoutError` after `timeout` (default: the pool's `acquireTimeoutMs`), the
   * signal's reason when `signal` aborts, the scope's reason when the scope is cancelled or closes
   * meanwhile, `PoolFullError` when `maxWaiting` acquires already wait, `PoolCreateError` when
   * creating a resource failed and nothing else could serve it, `PoolClosedError` once `close()` began.
   */
  acquire(options?: AcquireOptions): Promise<Lease<T>>;

  /**
   * Runs `fn` with a borrowed resource and gives it back when `fn` settles, whatever happens. `fn`
   * also gets the lease: call `lease.destroy(err)` when the resource turned out broken.
   */
  use<R>(fn: (resource: T, lease: Lease<T>) => R | PromiseLike<R>, options?: AcquireOptions): Promise<Awaited<R>>;

  /**
   * Says that `resource` is dead (its connection closed, the server killed it): an idle one is
   * destroyed at once, a borrowed one when its lease ends, instead of going back to the idle set;
   * either way it is never lent again, and `min` is refilled. For adapters that hear of a dead
   * connection from its client (`end`, `close`, a lost-connection error). Returns false when the
   * pool does not hold `resource` (already destroyed, or never its own).
   */
  evict(resource: T): boolean;

  /** Counts, right now. `size` never exceeds `max`. */
  stats(): PoolStats;

  /**
   * Closes the pool: acquires fail with `PoolClosedError` from now on (those waiting, too); waits
   * up to `timeout` ms (default 10000; 0: forever) for borrowed resources to come back, then
   * destroys those still out (and reports them, with where they were acquired) and every idle one.
   * Resolves when all are destroyed. Calling it again returns the same promise.
   */
  close(options?: PoolCloseOptions): Promise<void>;

  /** `await using pool = createPool(...)`: same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}
