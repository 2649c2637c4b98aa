/**
 * The part of generic-pool custodian uses, typed. Its published typings omit the constructor that
 * takes a custom evictor, which is how custodian evicts idle resources down to `min` and retires
 * them for age (see Pool).
 */
import genericPool from 'generic-pool';

/** generic-pool's record of one resource, as its evictor sees it. */
export interface PooledResource<T> {
  readonly obj: T;
}

/** Decides, on each eviction run, whether an idle resource goes. */
export interface Evictor<T> {
  evict(config: unknown, resource: PooledResource<T>, availableCount: number): boolean;
}

/** What custodian calls on a generic-pool Pool. */
export interface GenericPool<T> {
  readonly size: number;
  readonly available: number;
  readonly borrowed: number;
  /** Acquires waiting in generic-pool's own queue. */
  readonly pending: number;
  acquire(): Promise<T>;
  release(resource: T): Promise<void>;
  destroy(resource: T): Promise<void>;
  isBorrowedResource(resource: T): boolean;
  drain(): Promise<void>;
  clear(): Promise<void>;
  /**
   * Runs an eviction pass now: the evictor is asked about every idle resource (the pool sets
   * `numTestsPerEvictionRun` to `max`). generic-pool has no public way to remove one idle resource;
   * this calls its eviction run, `_evict()`, which exists unchanged in every 3.x release
   * (test/pool/evict.test.ts fails if an upgrade removes it).
   */
  evictNow(): void;
  /**
   * Serves the acquires queued in generic-pool with what is idle or may now be created. generic-pool
   * does this on its own events only; custodian calls it when a destroy it counted against `max`
   * (see `createGenericPool`'s `destroying`) has settled. Calls `_dispense()`, unchanged in every 3.x release.
   */
  dispatch(): void;
  on(event: 'factoryCreateError' | 'factoryDestroyError', listener: (error: unknown) => void): unknown;
}

export interface GenericFactory<T> {
  create(): Promise<T>;
  destroy(resource: T): Promise<void>;
}

export interface GenericOptions {
  max: number;
  min: number;
  fifo: boolean;
  autostart: boolean;
  evictionRunIntervalMillis: number;
  numTestsPerEvictionRun: number;
}

type PoolConstructor = new <T>(
  evictor: new () => Evictor<T>,
  deque: unknown,
  priorityQueue: unknown,
  factory: GenericFactory<T>,
  options: GenericOptions,
) => Omit<GenericPool<T>, 'evictNow' | 'dispatch'>;

const exported = genericPool as unknown as { Pool: PoolConstructor; Deque: unknown; PriorityQueue: unknown };

/**
 * A generic-pool Pool whose idle resources are judged by `evictor`. `destroying()` says how many
 * resources are still being destroyed: generic-pool forgets a resource when its destroy starts and
 * would create a replacement for a queued acquire at once, so that max + 1 live on the server until
 * the destroy ends. Its room for new resources (`spareResourceCapacity`, read by its dispatch)
 * counts them too; `dispatch()` then serves the queue once a destroy settled.
 */
export function createGenericPool<T>(
  factory: GenericFactory<T>,
  options: GenericOptions,
  evictor: new () => Evictor<T>,
  destroying: () => number,
): GenericPool<T> {
  const pool = new exported.Pool<T>(evictor, exported.Deque, exported.PriorityQueue, factory, options) as GenericPool<T> & {
    _evict(): void;
    _dispense(): void;
  };
  Object.defineProperty(pool, 'spareResourceCapacity', { get: () => options.max - pool.size - destroying() });
  pool.evictNow = () => pool._evict();
  pool.dispatch = () => pool._dispense();
  return pool;
}
