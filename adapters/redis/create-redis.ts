/**
 * `createRedis`: the shared client and the pool of dedicated connections, under one name, opened
 * in the root async context and closed together.
 */
import type { Redis } from 'ioredis';
import { createPool, type AcquireOptions, type Lease, type Pool, type PoolStats } from '../../src/index.js';
import { describe, rules, runInRoot, showInInspect, validateOptions } from '../../src/internal.js';
import { closeDedicated, openDedicated, resetDedicated } from './dedicated.js';
import { resolveRedisOptions, type RedisAdapterOptions, type ResolvedRedisOptions } from './options.js';
import { SharedClient, type SharedClientStats } from './shared.js';

/** What `redis.stats()` returns. */
export interface RedisStats {
  /** The shared client. */
  readonly client: SharedClientStats;
  /** The pool of dedicated connections. */
  readonly pool: PoolStats;
}

/** Options of `redis.close()`. */
export interface RedisCloseOptions {
  /** How long to wait for borrowed connections to come back, and for each socket to close. Default 10000. */
  timeout?: number | undefined;
}

/**
 * A Redis adapter: a shared client for ordinary commands and dedicated connections for what cannot
 * share one. Made by `createRedis`.
 */
export interface RedisAdapter extends AsyncDisposable {
  /** The adapter's name, as errors, reports and `inspect()` show it. */
  readonly name: string;
  /**
   * One multiplexed ioredis client for ordinary commands (GET, SET, pipelines, EVAL...): many
   * commands in flight on one connection. No lease needed; the adapter owns it and closes it.
   * Never use it for blocking commands, MULTI/WATCH, SUBSCRIBE, SELECT or CLIENT REPLY: they
   * would hold or change the connection for everyone else. Use `acquire()` for those.
   */
  readonly client: Redis;
  /**
   * Borrows a dedicated connection, for blocking commands (BLPOP, XREAD BLOCK...), MULTI/WATCH,
   * SUBSCRIBE, SELECT. The lease belongs to the current scope: give it back with `release()` or
   * `await using`; the scope reclaims it at its end otherwise, and reports the line that called
   * `acquire()`. Giving it back resets it (see docs/redis.md), or destroys it when its state is unknown.
   */
  acquire(options?: AcquireOptions): Promise<Lease<Redis>>;
  /** Borrows a dedicated connection for `fn` and gives it back when `fn` settles, whatever happens. */
  use<R>(fn: (connection: Redis, lease: Lease<Redis>) => R | PromiseLike<R>, options?: AcquireOptions): Promise<Awaited<R>>;
  /** The shared client's and the pool's figures, right now. */
  stats(): RedisStats;
  /**
   * Closes the pool (waiting up to `timeout` for borrowed connections) and the shared client (QUIT
   * after the commands in flight). Leaves no socket or timer behind; nothing reconnects afterwards.
   * Calling it again returns the same promise.
   */
  close(options?: RedisCloseOptions): Promise<void>;
  /** `await using redis = createRedis(...)`: same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const closeRules = { timeout: rules.ms };

class RedisAdapterImpl implements RedisAdapter {
  readonly name: string;
  readonly client: Redis;
  readonly #shared: SharedClient;
  readonly #pool: Pool<Redis>;
  readonly #acquireOptions: AcquireOptions;
  readonly #useOptions: AcquireOptions;
  readonly #unshow: () => void;
  #closing: Promise<void> | undefined = undefined;

  constructor(o: ResolvedRedisOptions) {
    this.name = o.name;
    const db = o.db;
    const quitTimeoutMs = o.connectTimeoutMs;
    let pool: Pool<Redis> | undefined;
    const closed = (client: Redis) => void pool?.evict(client);
    try {
      pool = createPool<Redis>(
        {
          create: () => openDedicated({ options: o, closed }),
          destroy: (client) => closeDedicated(client, quitTimeoutMs),
          reset: (client) => resetDedicated(client, db),
        },
        o.pool,
      );
    } catch (error) {
      // Name it as the caller wrote it: option 'pool.max', not createPool()'s 'max'.
      if (error instanceof TypeError)
        throw new TypeError(error.message.replace(/^createPool\(\): (unknown )?option '/, "createRedis(): $1option 'pool."));
      throw error;
    }
    this.#pool = pool;
    this.#shared = runInRoot(() => new SharedClient(o));
    this.client = this.#shared.client;
    // Reports name the line that called redis.acquire() / redis.use(), not a line in here.
    this.#acquireOptions = { boundary: RedisAdapterImpl.prototype.acquire };
    this.#useOptions = { boundary: RedisAdapterImpl.prototype.use };
    const shared = this.#shared;
    this.#unshow = showInInspect({ name: o.name, kind: 'redis client', stats: () => ({ ...shared.stats() }) });
  }

  acquire(options?: AcquireOptions): Promise<Lease<Redis>> {
    return this.#pool.acquire(options === undefined ? this.#acquireOptions : withBoundary(options, this.#acquireOptions));
  }

  use<R>(fn: (connection: Redis, lease: Lease<Redis>) => R | PromiseLike<R>, options?: AcquireOptions): Promise<Awaited<R>> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError(`redis.use(): fn must be a function, got ${describe(fn)}`));
    return this.#pool.use(fn, options === undefined ? this.#useOptions : withBoundary(options, this.#useOptions));
  }

  stats(): RedisStats {
    return { client: this.#shared.stats(), pool: this.#pool.stats() };
  }

  close(options?: RedisCloseOptions): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    try {
      validateOptions('redis.close()', options, closeRules);
    } catch (error) {
      return Promise.reject(error);
    }
    const timeout = options?.timeout ?? 10_000;
    this.#unshow();
    const pool = this.#pool.close({ timeout });
    const shared = this.#shared.close(timeout === 0 ? 10_000 : timeout);
    return (this.#closing = Promise.all([pool, shared]).then(() => undefined));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The caller's options, with the adapter's boundary unless they gave their own. */
function withBoundary(options: AcquireOptions, own: AcquireOptions): AcquireOptions {
  if (typeof options !== 'object' || options === null || options.boundary !== undefined) return options; // the pool rejects a bad one
  return { ...options, boundary: own.boundary };
}

/**
 * Creates a Redis adapter: a shared client (`client`) for ordinary commands and a custodian pool
 * of dedicated connections (`acquire()`, `use()`) for blocking commands, transactions, pub/sub and
 * SELECT. Takes ioredis options or a `redis://` URL, plus `name` and `pool`. Bad options throw a
 * `TypeError` naming the option before any socket is opened; passwords never appear in errors,
 * reports or `inspect()`.
 *
 * @example
 * const redis = createRedis({ url: process.env.REDIS_URL, name: 'cache', pool: { max: 10 } });
 * await redis.client.set('greeting', 'hello');
 * await withScope(async () => {
 *   await using conn = await redis.acquire();
 *   const item = await conn.value.blpop('jobs', 5);
 * });
 * await redis.close();
 */
export function createRedis(options: RedisAdapterOptions | string): RedisAdapter {
  return new RedisAdapterImpl(resolveRedisOptions(options));
}
