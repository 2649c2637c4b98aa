/**
 * What `createPool` accepts: the factory (how to make, check, reset and get rid of a resource) and
 * the options, with their defaults and the checks that turn a bad one into a TypeError naming it.
 */
import { describe, rules, validateOptions } from '../config/validate.js';

/** How a pool makes, checks, resets and gets rid of its resources. */
export interface PoolFactory<T> {
  /** Makes a new resource (opens a connection). Runs in the root async context: no scope, no other ALS store. */
  create(): T | PromiseLike<T>;
  /** Gets rid of a resource for good (closes the connection). Runs outside any scope; errors are reported, never thrown. */
  destroy(resource: T): unknown;
  /**
   * Tells whether an idle resource still works before it is handed out (a ping). A falsy answer
   * other than `undefined` (`false`, `null`, `0`, `''`), a throw, a rejection or no answer within
   * `acquireTimeoutMs` destroys it and the acquire gets another; `undefined` (a ping that resolved
   * nothing) and truthy answers mean it works. Runs for resources idle at least
   * `validateAfterIdleMs`; never for one made while the acquire waited, nor for one handed straight
   * from a releaser to a waiter.
   */
  validate?: ((resource: T) => unknown) | undefined;
  /**
   * Puts a returned resource back in a clean state before anyone else gets it (roll back, select
   * the default database). A throw, a rejection or no answer within `acquireTimeoutMs` destroys the
   * resource instead. Runs outside any scope.
   */
  reset?: ((resource: T) => unknown) | undefined;
}

/** Options of `createPool`. Every one is optional. */
export interface PoolOptions {
  /** Shown in errors, reports and events. Default `pool #<n>`. */
  name?: string | undefined;
  /** What a resource is, for reports: `mysql connection`. Default `pooled resource`. */
  kind?: string | undefined;
  /** Resources kept even when idle (created at start and after each destroy). Default 0. */
  min?: number | undefined;
  /** Resources at most, borrowed or idle. Default 10. */
  max?: number | undefined;
  /**
   * Acquires allowed to wait when every resource is borrowed; one more fails at once with a
   * `PoolFullError`. Default: no limit (`acquireTimeoutMs` still bounds each wait).
   */
  maxWaiting?: number | undefined;
  /** How long an acquire waits before failing with a `PoolTimeoutError`. 0 waits forever. Default 30000. */
  acquireTimeoutMs?: number | undefined;
  /** An idle resource is destroyed after this long, down to `min`. 0 keeps idle resources. Default 30000. */
  idleTimeoutMs?: number | undefined;
  /**
   * A resource older than this is retired: when it comes back (never while borrowed), or while
   * idle. Each resource's lifetime is shortened by a random 0–10% so that they do not all expire
   * at once. 0 (default) never retires for age.
   */
  maxLifetimeMs?: number | undefined;
  /** A resource is retired after this many borrows. 0 (default): no limit. */
  maxUses?: number | undefined;
  /** `validate` runs only on resources idle at least this long. Default 0: on every borrow from the idle set. */
  validateAfterIdleMs?: number | undefined;
  /**
   * A resource borrowed longer than this is reported (with the line that acquired it), and again
   * when it comes back. 0 (default) uses `configure({ leakThresholdMs })`.
   */
  leakThresholdMs?: number | undefined;
  /**
   * A resource counts against `max` until its `destroy` has finished, since the server still has
   * it; a destroy that takes longer than this is reported (a `ResourceReleaseWarning`) and stops
   * counting. 0 waits forever. Default 10000.
   */
  destroyTimeoutMs?: number | undefined;
}

/** The options with every default filled in. */
export interface ResolvedPoolOptions {
  readonly name: string;
  readonly kind: string;
  readonly min: number;
  readonly max: number;
  readonly maxWaiting: number;
  readonly acquireTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  readonly maxUses: number;
  readonly validateAfterIdleMs: number;
  readonly leakThresholdMs: number;
  readonly destroyTimeoutMs: number;
}

const optionRules = {
  name: rules.string,
  kind: rules.string,
  min: rules.count,
  max: rules.positiveInt,
  maxWaiting: rules.count,
  acquireTimeoutMs: rules.ms,
  idleTimeoutMs: rules.ms,
  maxLifetimeMs: rules.ms,
  maxUses: rules.count,
  validateAfterIdleMs: rules.ms,
  leakThresholdMs: rules.ms,
  destroyTimeoutMs: rules.ms,
} satisfies Record<keyof PoolOptions, unknown>;

const factoryRules = { create: true, destroy: true, validate: true, reset: true } satisfies Record<keyof PoolFactory<unknown>, true>;

let poolCount = 0;

/** Checks the factory and options, throwing a TypeError that names the first bad one; fills in defaults. */
export function resolvePoolOptions(factory: unknown, options: PoolOptions | undefined): ResolvedPoolOptions {
  if (typeof factory !== 'object' || factory === null) {
    throw new TypeError(`createPool(): factory must be an object with create and destroy functions, got ${describe(factory)}`);
  }
  // Read through the prototype too: a factory may be a class instance.
  const f = factory as Record<string, unknown>;
  for (const key of Object.keys(factoryRules) as (keyof typeof factoryRules)[]) {
    const value = f[key];
    const required = key === 'create' || key === 'destroy';
    if (value === undefined && !required) continue;
    if (typeof value !== 'function') {
      throw new TypeError(
        `createPool(): factory.${key} must be a function${required ? ' (a pool needs create() and destroy())' : ''}, got ${describe(value)}`,
      );
    }
  }
  // A plain object's extra key is a typo (`validiate`); a class instance's fields are its state.
  const proto: unknown = Object.getPrototypeOf(f);
  if (proto === Object.prototype || proto === null) {
    for (const key of Object.keys(f)) {
      if (!(key in factoryRules))
        throw new TypeError(`createPool(): unknown factory key '${key}'; a factory has create, destroy, validate and reset`);
    }
  }
  validateOptions('createPool()', options, optionRules);
  const o = options ?? {};
  const max = o.max ?? 10;
  const min = o.min ?? 0;
  if (min > max) throw new TypeError(`createPool(): option 'min' (${min}) must not exceed option 'max' (${max})`);
  return {
    name: o.name ?? `pool #${++poolCount}`,
    kind: o.kind ?? 'pooled resource',
    min,
    max,
    maxWaiting: o.maxWaiting ?? Infinity,
    acquireTimeoutMs: o.acquireTimeoutMs ?? 30_000,
    idleTimeoutMs: o.idleTimeoutMs ?? 30_000,
    maxLifetimeMs: o.maxLifetimeMs ?? 0,
    maxUses: o.maxUses ?? 0,
    validateAfterIdleMs: o.validateAfterIdleMs ?? 0,
    leakThresholdMs: o.leakThresholdMs ?? 0,
    destroyTimeoutMs: o.destroyTimeoutMs ?? 10_000,
  };
}

/** Options of `pool.acquire()`. */
export interface AcquireOptions {
  /** Gives up waiting when it aborts; the acquire rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Milliseconds to wait, overriding the pool's `acquireTimeoutMs`. 0 waits forever. */
  timeout?: number | undefined;
  /**
   * Your function that wraps this call (`getConnection() { return pool.acquire({ boundary:
   * getConnection }) }`): reports name the line that called it, not a line inside it. It must be
   * on the stack: call `acquire` from it synchronously, before any `await`.
   */
  boundary?: ((...args: never[]) => unknown) | undefined;
}

export const acquireRules = { signal: rules.signal, timeout: rules.ms, boundary: rules.function };

/** Options of `pool.close()`. */
export interface PoolCloseOptions {
  /**
   * How long to wait for borrowed resources to come back before destroying them anyway and
   * reporting them. 0 waits forever. Default 10000.
   */
  timeout?: number | undefined;
}

export const closeRules = { timeout: rules.ms };

/**
 * For adapters: a factory that carries this key set to `true` runs its own `validate` and `reset`
 * in the root context where they start async work (see runInRoot). The pool then calls them
 * directly, without switching to the root context around each call: a switch costs about as much
 * as a sync validate and a clean reset together, and a pool makes both calls on every statement.
 */
export const HOOKS_IN_ROOT: unique symbol = Symbol('custodian.hooksInRoot');
