/** `createPool`: the one way to make a pool (and, for adapters, its option-free callback acquire). */
import type { Lease } from '../lease/lease.js';
import type { Boundary } from '../report/sites.js';
import type { PoolFactory, PoolOptions } from './options.js';
import type { Pool } from './pool.js';
import { ResourcePool } from './resource-pool.js';

/**
 * Creates a pool on generic-pool. Leases it hands out belong to the current scope; `create`,
 * `destroy`, `validate` and `reset` run outside any scope. Bad options throw a `TypeError` that
 * names the option.
 *
 * @example
 * const pool = createPool(
 *   { create: () => mysql.createConnection(url), destroy: (c) => c.end(), reset: (c) => c.reset() },
 *   { name: 'mysql', max: 10, acquireTimeoutMs: 5_000, leakThresholdMs: 30_000 },
 * );
 */
export function createPool<T>(factory: PoolFactory<T>, options?: PoolOptions): Pool<T> {
  return new ResourcePool<T>(factory, options);
}

/**
 * For adapters: `pool.acquire()` with no options, its site captured above `boundary` (the
 * adapter's public function), by callback: without the promise (and the microtask) of its own, for
 * a statement that settles a promise of its own anyway. See ResourcePool.lendAbove for when the
 * callbacks run.
 */
export function lendAbove<T>(pool: Pool<T>, boundary: Boundary, ok: (lease: Lease<T>) => void, fail: (reason: unknown) => void): void {
  (pool as ResourcePool<T>).lendAbove(boundary, ok, fail);
}
