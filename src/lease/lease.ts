/**
 * A lease: one acquired resource that the code is expected to give back.
 *
 * Two objects per lease. `LeaseState` is the bookkeeping (the resource, how to release it, where
 * it was acquired); its owner scope, or the registry of unscoped leases, holds it. `Lease` is the
 * handle the user holds. Keeping them apart lets a FinalizationRegistry notice when an unscoped
 * handle becomes garbage while its state still knows how to give the resource back.
 */
import { settings, type LeakPolicy } from '../config/config.js';
import { LeaseReleasedError } from '../errors.js';
import { deliver, errorText, resourceName, siteText, type LeakedResource } from '../report/report.js';
import { addLease, removeLease, type WatchedEntry, type WatchedLease } from '../registry/registry.js';
import type { Linked } from '../registry/chain.js';
import { isPromiseLike, noop, RESOLVED } from '../util/promises.js';
import { currentOrigin, describes } from '../report/origin.js';
import { formatSite, type RawSite } from './sites.js';
import { describe } from '../config/validate.js';

/** How to give a tracked value back. */
export interface TrackOptions<T> {
  /** Gives the value back (closes it, returns it to its pool). May return a promise. */
  release: (value: T) => unknown;
  /**
   * Gets rid of a broken value instead of giving it back (`lease.destroy(reason)`, and leases
   * reclaimed from a task that was abandoned mid-flight). Defaults to `release`.
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

/** @internal What a scope needs to let go of an entry. */
export interface Owner {
  readonly id: number;
  readonly name: string | undefined;
  attach(entry: WatchedEntry): void;
  detach(entry: WatchedEntry): void;
  leakPolicy(): LeakPolicy;
}

/** @internal The pool a lease came from, as leases and reports need it. */
export interface PoolRef {
  readonly name: string;
  /** The pool's own `leakThresholdMs`; 0 defers to `configure({ leakThresholdMs })`. */
  readonly leakThresholdMs: number;
}

/** @internal Who gave a lease back, for the LeaseReleasedError message. */
export const BY_CODE = 'was already released';
const BY_GC = 'was destroyed by custodian after its handle was garbage-collected';

/** @internal LeaseState.state of a lease not yet given back. */
export const HELD = 0;
const RELEASED = 1;

/** A release's result as a promise, without allocating one for a sync success. */
function asPromise(result: unknown): Promise<void> {
  return isPromiseLike(result) ? Promise.resolve(result).then(noop) : RESOLVED;
}

/** @internal */
export class LeaseState<T = unknown> implements WatchedLease {
  prev: LeaseState | undefined = undefined;
  next: LeaseState | undefined = undefined;
  // Links in the registry's chain of every held lease (see registry.ts).
  older: Linked | undefined = undefined;
  newer: Linked | undefined = undefined;
  readonly isLease = true;
  state = HELD;
  reportedLong = false;
  /** The settled release, once it ran. */
  done: Promise<void> | undefined = undefined;
  /** How it was given back, for the LeaseReleasedError message. */
  releasedHow: string | undefined = undefined;
  /** @internal Who was acquiring it (a test, in test mode); see origin.ts. */
  readonly origin: object | undefined = currentOrigin();

  constructor(
    public value: T | undefined,
    public releaseFn: ((value: T) => unknown) | undefined,
    public destroyFn: ((value: T, reason: unknown) => unknown) | undefined,
    readonly kind: string,
    readonly label: string | undefined,
    public raw: RawSite | undefined,
    readonly t0: number,
    public owner: Owner | undefined,
    /** The pool it was borrowed from, if any. */
    readonly pool: PoolRef | undefined = undefined,
  ) {}

  describe(now: number): LeakedResource {
    const resource = { kind: this.kind, label: this.label, site: formatSite(this.raw), heldMs: now - this.t0 };
    return describes(this.pool === undefined ? resource : { ...resource, pool: this.pool.name }, this);
  }

  /** The held-too-long threshold that applies: its pool's own, else the global one. */
  thresholdMs(): number {
    return this.pool !== undefined && this.pool.leakThresholdMs > 0 ? this.pool.leakThresholdMs : settings.leakThresholdMs;
  }

  leakPolicy(): LeakPolicy {
    return this.owner === undefined ? settings.leaks : this.owner.leakPolicy();
  }

  unscoped(): boolean {
    return this.owner === undefined;
  }

  /**
   * Marks the lease released, detaches it from its owner, and runs the release (or destroy).
   * Returns what the release returned (so a sync release stays sync) and throws what it throws.
   * The caller guarantees the lease is held: this is the single place a resource is given back.
   */
  finish(destroying: boolean, reason: unknown, how: string): unknown {
    this.state = RELEASED;
    this.releasedHow = how;
    if (this.owner !== undefined) this.owner.detach(this);
    removeLease(this, this.owner === undefined);
    if (this.reportedLong) this.reportReturnedLate();
    const { value, releaseFn, destroyFn } = this;
    // A released lease handle may live on in user code: it must not keep the resource, its release
    // closures, its scope, or (through V8's unformatted stack frames) the acquiring code's objects.
    this.value = this.releaseFn = this.destroyFn = this.owner = undefined;
    if (this.raw !== undefined && this.raw.site === undefined) this.raw = undefined;
    return destroying && destroyFn !== undefined ? destroyFn(value as T, reason) : (releaseFn as (value: T) => unknown)(value as T);
  }

  /**
   * The handle was garbage-collected while the lease was held: destroy the resource, and say so.
   * Destroy, not release: that nobody holds the lease proves nothing about the value, which the
   * code may still be using (`const { value } = await pool.acquire()`). A pooled connection given
   * back here would be handed to the next borrower while the first one still runs a transaction
   * on it; destroyed, it is replaced, and the first user gets an error instead of a shared socket.
   */
  collect(): void {
    if (this.state !== HELD) return;
    const resource = this.describe(performance.now());
    deliver(
      {
        type: 'collected',
        resource,
        message: [
          `${resourceName(resource)} acquired at ${siteText(resource.site)} was garbage-collected without being released, after ${Math.round(resource.heldMs)} ms; custodian destroyed it${this.pool === undefined ? '' : ` (pool "${this.pool.name}" makes a new one)`}`,
          `  Its lease handle was dropped, but its value may still be in use, so it was not handed to anyone else. Keep the lease and release it (\`await using lease = ...\` or lease.release() in finally), or acquire it inside a scope so that the scope gives it back.`,
        ].join('\n'),
      },
      settings.leaks,
    );
    try {
      this.done = asPromise(this.finish(true, collectedReason(resource), BY_GC));
    } catch (error) {
      this.done = Promise.reject(error);
    }
    this.done.catch((error: unknown) => warnAsyncReleaseFailure(resource, 'after it was garbage-collected', error));
  }

  private reportReturnedLate(): void {
    const resource = this.describe(performance.now());
    deliver(
      {
        type: 'returned-late',
        resource,
        thresholdMs: this.thresholdMs(),
        message: `${resourceName(resource)} acquired at ${siteText(resource.site)} was returned after ${Math.round(resource.heldMs)} ms (reported earlier as held longer than leakThresholdMs ${this.thresholdMs()})`,
      },
      this.leakPolicy(),
    );
  }
}

/** What a collected lease's `destroy` is told: why the resource goes. */
function collectedReason(resource: LeakedResource): Error {
  const error = new Error(
    `${resourceName(resource)} acquired at ${siteText(resource.site)} was destroyed: its lease was garbage-collected unreleased`,
  );
  error.name = 'LeaseCollectedError';
  return error;
}

function warnAsyncReleaseFailure(resource: LeakedResource, when: string, error: unknown): void {
  process.emitWarning(`releasing ${resourceName(resource)} acquired at ${siteText(resource.site)} ${when} failed: ${errorText(error)}`, {
    type: 'ResourceReleaseWarning',
    code: 'CUSTODIAN_RELEASE_FAILED',
  });
}

/** What a report says of `lease`: kind, label, site, how long it has been held, its pool. */
export let describeLease: (lease: Lease<unknown>) => LeakedResource;

/**
 * A handle to one acquired resource. Give it back with `release()` (or `destroy(reason)` when it is
 * broken), or with `await using`. Releasing twice is harmless: the second call returns the first
 * call's promise. A lease acquired inside a scope that the code never releases is reclaimed when
 * the scope closes, and reported as a leak.
 *
 * @example
 * await using lease = scope.track(await openFile(path), { release: (f) => f.close(), kind: 'file' });
 * await lease.value.read(buffer);
 */
export class Lease<T> implements AsyncDisposable, Disposable {
  // Typed without T so that Lease<T> is covariant, like its `value`: a Lease<Connection> is a Lease<object>.
  readonly #s: LeaseState;

  static {
    // The module's own way in, for adapters (through internal.ts): no public member exposes the state.
    describeLease = (lease) => lease.#s.describe(performance.now());
  }

  /** @internal Use `scope.track()`, `track()` or a pool's `acquire()`. */
  constructor(state: LeaseState<T>) {
    this.#s = state as LeaseState;
  }

  /** The resource. Reading it after release throws a `LeaseReleasedError`: that is a use-after-release bug. */
  get value(): T {
    const s = this.#s;
    if (s.state !== HELD) {
      const site = formatSite(s.raw);
      throw new LeaseReleasedError(
        `${resourceName(s)}${site === undefined ? '' : ` acquired at ${site}`} ${s.releasedHow ?? BY_CODE}; use its value only while you hold the lease`,
      );
    }
    return s.value as T;
  }

  /** True once `release()` or `destroy()` was called, or the owning scope reclaimed it. */
  get released(): boolean {
    return this.#s.state !== HELD;
  }

  /** What the resource is, as given to `track` (`resource` when not given). */
  get kind(): string {
    return this.#s.kind;
  }

  /** Which one, as given to `track`. */
  get label(): string | undefined {
    return this.#s.label;
  }

  /**
   * Where it was acquired (`src/routes/users.ts:42:18`), formatted on first read; `undefined`
   * when not recorded, or after release unless it was formatted before (a report formats it).
   */
  get site(): string | undefined {
    return formatSite(this.#s.raw);
  }

  /** When it was acquired, in milliseconds since the epoch. */
  get acquiredAt(): number {
    return performance.timeOrigin + this.#s.t0;
  }

  /** Gives the resource back. Idempotent: later calls return the first call's promise. */
  release(): Promise<void> {
    const s = this.#s;
    if (s.state !== HELD) return s.done ?? RESOLVED;
    try {
      return (s.done = asPromise(s.finish(false, undefined, BY_CODE)));
    } catch (error) {
      return (s.done = Promise.reject(error));
    }
  }

  /** Gets rid of a broken resource instead of giving it back. No effect once released. */
  destroy(reason?: unknown): Promise<void> {
    const s = this.#s;
    if (s.state !== HELD) return s.done ?? RESOLVED;
    try {
      return (s.done = asPromise(s.finish(true, reason, BY_CODE)));
    } catch (error) {
      return (s.done = Promise.reject(error));
    }
  }

  /** `await using` support: same as `release()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /**
   * `using` support. A synchronous release runs (and throws) synchronously; an asynchronous one
   * cannot be awaited here, so its failure is reported as a `ResourceReleaseWarning`: prefer
   * `await using` for resources whose release is asynchronous.
   */
  [Symbol.dispose](): void {
    const s = this.#s;
    if (s.state !== HELD) return;
    const result = s.finish(false, undefined, BY_CODE);
    if (isPromiseLike(result)) {
      const resource = s.describe(performance.now());
      s.done = Promise.resolve(result).then(noop);
      s.done.catch((error: unknown) => warnAsyncReleaseFailure(resource, 'by `using` (not awaited)', error));
    }
  }

  /** For `console.log` and `util.inspect`: what and where, never the resource itself. */
  get [Symbol.toStringTag](): string {
    return `Lease ${resourceName(this.#s)}`;
  }
}

/** @internal Validates `track` options and builds the lease. The option checks are inline: this is a hot path. */
export function createLease<T>(
  where: string,
  value: T,
  options: TrackOptions<T>,
  owner: Owner | undefined,
  raw: RawSite | undefined,
): Lease<T> {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${where}: options must be an object with a release function, got ${describe(options)}`);
  }
  const { release, destroy, kind, label, boundary } = options;
  if (typeof release !== 'function') {
    throw new TypeError(`${where}: option 'release' must be a function that gives the value back, got ${describe(release)}`);
  }
  if (destroy !== undefined && typeof destroy !== 'function') {
    throw new TypeError(`${where}: option 'destroy' must be a function, got ${describe(destroy)}`);
  }
  if (kind !== undefined && typeof kind !== 'string')
    throw new TypeError(`${where}: option 'kind' must be a string, got ${describe(kind)}`);
  if (label !== undefined && typeof label !== 'string')
    throw new TypeError(`${where}: option 'label' must be a string, got ${describe(label)}`);
  if (boundary !== undefined && typeof boundary !== 'function')
    throw new TypeError(`${where}: option 'boundary' must be a function, got ${describe(boundary)}`);
  return openLease(new LeaseState<T>(value, release, destroy, kind ?? 'resource', label, raw, performance.now(), owner));
}

/** @internal Hands out a lease for a built state: attaches it to its owner scope, or watches it as unscoped. */
export function openLease<T>(state: LeaseState<T>): Lease<T> {
  const lease = new Lease<T>(state);
  const owner = state.owner;
  if (owner !== undefined) {
    owner.attach(state as LeaseState);
    addLease(state as LeaseState, undefined);
  } else {
    // V8 keeps an unformatted stack's frames, receivers included: `this.lease = track(...)` would
    // keep the handle reachable from its own state and the GC backstop would never fire. Formatting
    // now (~10 µs, only for unscoped leases whose site is recorded) turns the frames into a string.
    formatSite(state.raw);
    addLease(state as LeaseState, lease);
  }
  return lease;
}
