/**
 * What a user holds of a scope: the `Scope` interface and its options. The machinery behind it is
 * `ScopeNode` (scope-node.ts), `Closer` (closer.ts) and `runTask` (task.ts); none of it can be
 * reached through this type, and a scope cannot be constructed: `withScope`, `openScope` and
 * `scope.fork` make them.
 */
import type { LeakPolicy } from '../report/types.js';
import type { Lease, TrackOptions } from '../lease/lease.js';

/** Options of `withScope`, `openScope` and `scope.fork`. */
export interface ScopeOptions {
  /** Shown in reports: a route, a queue name, a job name. */
  name?: string | undefined;
  /** An outer signal: when it aborts, the scope is cancelled with its reason. */
  signal?: AbortSignal | undefined;
  /** Milliseconds after which the scope is cancelled with a `ScopeTimeoutError`. */
  timeout?: number | undefined;
  /** Leak policy for this scope and its children, overriding `configure({ leaks })`. */
  leaks?: LeakPolicy | undefined;
  /** How long closing waits for one release, overriding `configure({ disposeTimeoutMs })`. 0 waits forever. */
  disposeTimeoutMs?: number | undefined;
  /**
   * Your function that wraps this call: reports name the line that called it as where the scope
   * was opened. It must be on the stack: open the scope from it synchronously.
   */
  boundary?: ((...args: never[]) => unknown) | undefined;
}

/** The state of a scope: `open` until `close()` starts, `closing` while it releases, then `closed`. */
export type ScopeState = 'open' | 'closing' | 'closed';

/**
 * Owns the resources of one task. Get one from `withScope`, `openScope` or `scope.fork`.
 *
 * Everything given to a scope (`use`, `adopt`, `defer`, `track`) is released when it closes, in
 * reverse order of acquisition, each one even when another throws. Leases the code released itself
 * are skipped; those it did not are reclaimed and reported as leaks (or, when the task was
 * cancelled while still running, destroyed and reported as such).
 */
export interface Scope extends AsyncDisposable {
  /** A number unique in this process, shown in reports as `#id`. */
  readonly id: number;
  /** The name given in the options, if any. */
  readonly name: string | undefined;
  /** The scope this one was opened in, if any. */
  readonly parent: Scope | undefined;
  /** `open` until `close()` starts, `closing` while it releases, then `closed`. */
  readonly state: ScopeState;
  /**
   * Aborted when the scope is cancelled (`cancel()`, its `timeout`, its outer `signal`, its parent
   * being cancelled) or closes. Pass it to whatever the task awaits so that the work stops too.
   */
  readonly signal: AbortSignal;
  /** Where the scope was opened (`src/server.ts:12:3`); `undefined` when not recorded, or after close unless formatted before. */
  readonly site: string | undefined;

  /**
   * Cancels the task: aborts `signal` (and the children's) with `reason`, and the task's
   * `withScope` rejects with `reason`. If the scope has a `timeout` or `signal` (its own or an
   * ancestor's), `withScope` stops waiting at once and closes the scope; leases the still-running
   * body holds are then destroyed rather than released, since their state is unknown. Otherwise it
   * answers when the body settles.
   */
  cancel(reason?: unknown): void;

  /** Runs `fn` with this scope as the current scope. The scope stays open. */
  run<R>(fn: (scope: Scope) => R): R;

  /** Opens a child scope. It closes (at the latest) before this scope's own resources are released. */
  fork(options?: ScopeOptions): Scope;

  /**
   * Makes the scope own a `Disposable` or `AsyncDisposable` (anything `using` accepts): it is
   * disposed when the scope closes. Returns it. `null` and `undefined` pass through, as with `using`.
   */
  use<T extends Disposable | AsyncDisposable | null | undefined>(value: T): T;

  /** Makes the scope own `value`: `release(value)` runs when the scope closes. Returns `value`. */
  adopt<T>(value: T, release: (value: T) => unknown): T;

  /** Runs `fn` when the scope closes (in LIFO order with everything else it owns). */
  defer(fn: () => unknown): void;

  /**
   * Tracks `value` as a lease the code is expected to give back with `lease.release()` (or
   * `await using`). If the code does not, the scope reclaims it when it closes and reports a leak
   * with the line that acquired it.
   */
  track<T>(value: T, options: TrackOptions<T>): Lease<T>;

  /**
   * Closes the scope: cancels and closes its open children, then releases everything it owns,
   * newest first. Resolves when all is released; rejects with the release errors (folded like
   * `await using` does) or, under the `throw` policy, a `LeakError`. Calling it again is harmless.
   * Called from outside while the scope's `withScope` task still runs, it cancels the task first
   * (a `ScopeClosedError` reason): what the task holds is then destroyed, not released.
   */
  close(): Promise<void>;

  /** `await using` support: same as `close()`. */
  [Symbol.asyncDispose](): Promise<void>;
}
