/** `createPool`: the one way to make a pool (and, for adapters, its option-free acquire). */
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
 * adapter's public function). Saves checking a constant `{ boundary }` on every statement.
 */
export function acquireAbove<T>(pool: Pool<T>, boundary: Boundary): Promise<Lease<T>> {
  return (pool as ResourcePool<T>).acquireAbove(boundary);
}
