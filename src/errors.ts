/**
 * Error classes. Every error custodian throws extends `CustodianError` and has a stable `code`
 * (`ERR_CUSTODIAN_*`), so that callers can catch them all, and branch on the code without
 * `instanceof` (which breaks across duplicated installs of the package).
 */
import type { LeakReport } from './report/types.js';

/**
 * The base class of every error custodian and its adapters throw: `err instanceof CustodianError`
 * catches them all; `err.code` (`ERR_CUSTODIAN_POOL_TIMEOUT`, ...) says which, and stays stable
 * across versions. (`SuppressedError`, which folds several release errors, is the standard one.)
 */
export abstract class CustodianError extends Error {
  /** Stable across versions: branch on it. */
  abstract readonly code: string;
}

/**
 * Thrown when something is acquired into a scope that is closing or closed (the value handed over
 * is released first, so nothing escapes), or when code runs in it, forks it or opens a scope in it.
 * Also the abort reason of a scope closed while its task still ran (by its parent, or from outside).
 */
export class ScopeClosedError extends CustodianError {
  override readonly name = 'ScopeClosedError';
  readonly code = 'ERR_CUSTODIAN_SCOPE_CLOSED';
}

/**
 * Builds an error without capturing a stack: for abort reasons, whose stack would only point into
 * custodian or Node's timers (capturing costs ~3 µs) while the message names the scope.
 */
export function withoutStack<E>(make: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** Thrown when `lease.value` is read after the lease was given back: a use-after-release bug. */
export class LeaseReleasedError extends CustodianError {
  override readonly name = 'LeaseReleasedError';
  readonly code = 'ERR_CUSTODIAN_LEASE_RELEASED';
}

/**
 * The reason a scope's signal aborts when its `timeout` elapses. Its `name` is `TimeoutError`, like
 * the reason of `AbortSignal.timeout()`, so code that checks `err.name === 'TimeoutError'` works.
 */
export class ScopeTimeoutError extends CustodianError {
  override readonly name = 'TimeoutError';
  readonly code = 'ERR_CUSTODIAN_SCOPE_TIMEOUT';
  constructor(
    message: string,
    /** The timeout that elapsed, in milliseconds. */
    readonly timeoutMs: number,
  ) {
    super(message);
  }
}

/**
 * Thrown from a scope's close under the `throw` leak policy (test mode) when the code left leases
 * unreleased. The leases were reclaimed before this was thrown; `report` says which and where.
 * Not thrown for the leases of a task cancelled while still running (its error is the reason).
 */
export class LeakError extends CustodianError {
  override readonly name = 'LeakError';
  readonly code = 'ERR_CUSTODIAN_LEAK';
  constructor(
    message: string,
    /** The structured report behind the message. */
    readonly report: LeakReport,
  ) {
    super(message);
  }
}

/** What every pool error has: the name of the pool it came from. */
abstract class PoolError extends CustodianError {
  constructor(
    message: string,
    /** The pool's name. */
    readonly pool: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/**
 * An acquire waited longer than its `timeout` (or the pool's `acquireTimeoutMs`) without getting a
 * resource. `cause` is the last `create` error when creating a resource failed meanwhile.
 */
export class PoolTimeoutError extends PoolError {
  override readonly name = 'PoolTimeoutError';
  readonly code = 'ERR_CUSTODIAN_POOL_TIMEOUT';
  constructor(
    message: string,
    pool: string,
    /** How long the acquire waited, in ms. */
    readonly waitMs: number,
    options?: ErrorOptions,
  ) {
    super(message, pool, options);
  }
}

/** An acquire found `maxWaiting` acquires already waiting and every resource borrowed: it fails at once. */
export class PoolFullError extends PoolError {
  override readonly name = 'PoolFullError';
  readonly code = 'ERR_CUSTODIAN_POOL_FULL';
}

/** The pool is closing or closed: it hands out nothing more. Also the reason of acquires still waiting when `close()` began. */
export class PoolClosedError extends PoolError {
  override readonly name = 'PoolClosedError';
  readonly code = 'ERR_CUSTODIAN_POOL_CLOSED';
}

/**
 * Creating a resource failed and no other resource could serve the acquire (none borrowed to come
 * back, no other create under way): the acquire fails at once. `cause` is the error `create` threw.
 */
export class PoolCreateError extends PoolError {
  override readonly name = 'PoolCreateError';
  readonly code = 'ERR_CUSTODIAN_POOL_CREATE';
}

/**
 * The shape of the standard `SuppressedError` (ES2026 explicit resource management). Node < 24 has
 * no global `SuppressedError`, so custodian uses the global one when it exists and this class
 * otherwise: check `err.name === 'SuppressedError'`, not `instanceof`.
 */
export interface SuppressedErrorLike extends Error {
  /** The error thrown last (by the release that ran last). */
  readonly error: unknown;
  /** The error it suppressed: an earlier release's error, or a chain of them. */
  readonly suppressed: unknown;
}

class SuppressedErrorPolyfill extends Error implements SuppressedErrorLike {
  override readonly name = 'SuppressedError';
  constructor(
    readonly error: unknown,
    readonly suppressed: unknown,
    message?: string,
  ) {
    super(message ?? 'An error was suppressed during disposal.');
  }
}

type SuppressedErrorConstructor = new (error: unknown, suppressed: unknown, message?: string) => SuppressedErrorLike;

const NativeSuppressedError = (globalThis as { SuppressedError?: SuppressedErrorConstructor }).SuppressedError;

/** Constructs a `SuppressedError`: the native one where the runtime has it. */
export const SuppressedError: SuppressedErrorConstructor = NativeSuppressedError ?? SuppressedErrorPolyfill;

/**
 * Folds release errors, in the order they were thrown, the way `await using` does: one error is
 * returned as it is; each later one wraps the earlier ones as `new SuppressedError(later, earlier)`.
 */
export function foldErrors(errors: readonly unknown[], scopeLabel: string): unknown {
  let folded: unknown = errors[0];
  for (let i = 1; i < errors.length; i++) {
    folded = new SuppressedError(
      errors[i],
      folded,
      `${scopeLabel}: ${i + 1} errors while closing (failed releases, or leaks under the throw policy); \`error\` is the last, \`suppressed\` holds the earlier ones`,
    );
  }
  return folded;
}

/**
 * Lists the errors folded into a `SuppressedError` chain, oldest first. Any other value is returned
 * as a one-element list. Use it to log every release error of a scope, not only the last one.
 */
export function flattenSuppressed(error: unknown): unknown[] {
  const out: unknown[] = [];
  let current = error;
  while (isSuppressedError(current)) {
    out.push(current.error);
    current = current.suppressed;
  }
  out.push(current);
  return out.reverse();
}

function isSuppressedError(value: unknown): value is SuppressedErrorLike {
  return value instanceof Error && value.name === 'SuppressedError' && 'suppressed' in value;
}

const releaseErrorsOf = new WeakMap<object, unknown[]>();

/**
 * When a task fails and releasing its resources fails too, `withScope` rethrows the task's own
 * error untouched and records the release errors here (and in a `ResourceReleaseWarning`).
 * Returns them, oldest first, or an empty list.
 */
export function getReleaseErrors(error: unknown): readonly unknown[] {
  return (typeof error === 'object' && error !== null) || typeof error === 'function' ? (releaseErrorsOf.get(error) ?? []) : [];
}

/** @internal */
export function attachReleaseErrors(error: unknown, errors: readonly unknown[]): void {
  if ((typeof error === 'object' && error !== null) || typeof error === 'function') {
    const previous = releaseErrorsOf.get(error);
    releaseErrorsOf.set(error, previous ? [...previous, ...errors] : [...errors]);
  }
}
