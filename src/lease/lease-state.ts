/**
 * A lease's bookkeeping: the resource, how to give it back, where and when it was acquired, who
 * holds it. Its owner scope (or, for a lease with no scope, the registry) keeps it; the user holds
 * only the handle (lease-handle.ts). Keeping the two apart lets a FinalizationRegistry notice when
 * an unscoped handle becomes garbage while its state still knows how to get rid of the resource.
 */
import { settings } from '../config/config.js';
import type { Linked } from '../registry/chain.js';
import { removeLease, type WatchedEntry, type WatchedLease } from '../registry/registry.js';
import { deliver, warnRelease } from '../report/deliver.js';
import { collectedMessage, leaseMessages, releaseFailedMessage, resourceName, returnedLateMessage, siteText } from '../report/messages.js';
import { currentOrigin, recordSubject } from '../report/origin.js';
import type { LeakedResource, LeakPolicy } from '../report/types.js';
import { isPromiseLike, noop, RESOLVED } from '../util/promises.js';
import { formatSite, type RawSite } from '../report/sites.js';

/** What a scope needs to let go of an entry. */
export interface Owner {
  readonly id: number;
  readonly name: string | undefined;
  attach(entry: WatchedEntry): void;
  detach(entry: WatchedEntry): void;
  leakPolicy(): LeakPolicy;
}

/** The pool a lease came from, as leases and reports need it. */
export interface PoolRef {
  readonly name: string;
  /** The pool's own `leakThresholdMs`; 0 defers to `configure({ leakThresholdMs })`. */
  readonly leakThresholdMs: number;
}

/** What makes a lease. */
export interface LeaseInit<T> {
  readonly value: T;
  readonly release: (value: T) => unknown;
  readonly destroy: ((value: T, reason: unknown) => unknown) | undefined;
  readonly kind: string;
  readonly label: string | undefined;
  /** Where it was acquired, when recorded. */
  readonly raw: RawSite | undefined;
  /** performance.now() when acquired. */
  readonly t0: number;
  /** Its scope; `undefined`: held by no scope (watched for garbage). */
  readonly owner: Owner | undefined;
  /** The pool it was borrowed from, if any. */
  readonly pool?: PoolRef | undefined;
}

/** LeaseState.state of a lease not yet given back. */
export const HELD = 0;
const RELEASED = 1;

/** A release's result as a promise, without allocating one for a sync success. */
export function asPromise(result: unknown): Promise<void> {
  return isPromiseLike(result) ? Promise.resolve(result).then(noop) : RESOLVED;
}

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
  /** Who was acquiring it (a test, in test mode); see origin.ts. */
  readonly origin: object | undefined = currentOrigin();
  // Dropped at release (see finish): a released handle must not keep the resource alive.
  value: T | undefined;
  releaseFn: ((value: T) => unknown) | undefined;
  destroyFn: ((value: T, reason: unknown) => unknown) | undefined;
  owner: Owner | undefined;
  raw: RawSite | undefined;
  readonly kind: string;
  readonly label: string | undefined;
  readonly t0: number;
  readonly pool: PoolRef | undefined;

  constructor(init: LeaseInit<T>) {
    this.value = init.value;
    this.releaseFn = init.release;
    this.destroyFn = init.destroy;
    this.kind = init.kind;
    this.label = init.label;
    this.raw = init.raw;
    this.t0 = init.t0;
    this.owner = init.owner;
    this.pool = init.pool;
  }

  /** What a report says of it, now. */
  leaked(now: number): LeakedResource {
    const resource = { kind: this.kind, label: this.label, site: formatSite(this.raw), heldMs: now - this.t0 };
    return recordSubject(this.pool === undefined ? resource : { ...resource, pool: this.pool.name }, this);
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
    const resource = this.leaked(performance.now());
    deliver({ type: 'collected', resource, message: collectedMessage(resource) }, settings.leaks);
    const reason = new Error(leaseMessages.collected(resource));
    reason.name = 'LeaseCollectedError';
    try {
      this.done = asPromise(this.finish(true, reason, leaseMessages.releasedByGc));
    } catch (error) {
      this.done = Promise.reject(error);
    }
    this.done.catch((error: unknown) => warnReleaseFailed(resource, 'after it was garbage-collected', error));
  }

  private reportReturnedLate(): void {
    const resource = this.leaked(performance.now());
    const thresholdMs = this.thresholdMs();
    deliver({ type: 'returned-late', resource, thresholdMs, message: returnedLateMessage(resource, thresholdMs) }, this.leakPolicy());
  }
}

/** A release nobody awaits failed (after collection, or by `using`). */
export function warnReleaseFailed(resource: LeakedResource, when: string, error: unknown): void {
  warnRelease(releaseFailedMessage(`${resourceName(resource)} acquired at ${siteText(resource.site)}`, when, error));
}
