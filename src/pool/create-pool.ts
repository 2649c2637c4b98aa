/** `createPool`: the one way to make a pool. */
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
