/**
 * What a user holds of a lease: the `Lease` interface and `TrackOptions`. Behind it are the
 * handle (lease-handle.ts) and the bookkeeping (lease-state.ts); a lease cannot be constructed:
 * `scope.track()`, `track()` and a pool's `acquire()` make them.
 */

/** How to give a tracked value back. */
export interface TrackOptions<T> {
  /** Gives the value back (closes it, returns it to its pool). May return a promise. */
  release: (value: T) => unknown;
  /**
   * Gets rid of a broken value instead of giving it back (`lease.destroy(reason)`, and leases
   * reclaimed from a task that was abandoned mid-flight, or collected unreleased). Defaults to `release`.
   */
  destroy?: ((value: T, reason: unknown) => unknown) | undefined;
  /** What the value is, for reports: `mysql connection`, `file handle`. Default `resource`. */
  kind?: string | undefined;
  /** Which one, for reports: a pool name, a file name. */
  label?: string | undefined;
  /**
   * Your function that wraps this call: reports name the line that called it, not a line inside
   * it. It must be on the stack: call `track` from it synchronously.
   */
  boundary?: ((...args: never[]) => unknown) | undefined;
}

/**
 * A handle to one acquired resource. Give it back with `release()` (or `destroy(reason)` when it is
 * broken), or with `await using`. Releasing twice is harmless: the second call returns the first
 * call's promise. A lease acquired inside a scope that the code never releases is reclaimed when
 * the scope closes, and reported as a leak.
 *
 * `using` works too: a synchronous release runs (and throws) at once; an asynchronous one cannot be
 * awaited there, so its failure is reported as a `ResourceReleaseWarning`. Prefer `await using`
 * for resources whose release is asynchronous.
 *
 * @example
 * await using lease = scope.track(await openFile(path), { release: (f) => f.close(), kind: 'file' });
 * await lease.value.read(buffer);
 */
export interface Lease<T> extends AsyncDisposable, Disposable {
  /** The resource. Reading it after release throws a `LeaseReleasedError`: that is a use-after-release bug. */
  readonly value: T;
  /** True once `release()` or `destroy()` was called, or the owning scope reclaimed it. */
  readonly released: boolean;
  /** What the resource is, as given to `track` (`resource` when not given). */
  readonly kind: string;
  /** Which one, as given to `track`. */
  readonly label: string | undefined;
  /**
   * Where it was acquired (`src/routes/users.ts:42:18`), formatted on first read; `undefined`
   * when not recorded, or after release unless it was formatted before (a report formats it).
   */
  readonly site: string | undefined;
  /** When it was acquired, in milliseconds since the epoch. */
  readonly acquiredAt: number;
  /** Gives the resource back. Idempotent: later calls return the first call's promise. */
  release(): Promise<void>;
  /** Gets rid of a broken resource instead of giving it back. No effect once released. */
  destroy(reason?: unknown): Promise<void>;
  /** `await using` support: same as `release()`. */
  [Symbol.asyncDispose](): Promise<void>;
  /** `using` support (see above). */
  [Symbol.dispose](): void;
}
