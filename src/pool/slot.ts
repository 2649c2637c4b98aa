/**
 * One resource as a pool keeps it: the value, its age and uses, the lease holding it now, and why
 * it is going when it goes. generic-pool holds slots, not values, so any value (even a primitive)
 * can be pooled.
 */
import type { LeaseState } from '../lease/lease-state.js';
import type { Node } from '../registry/list.js';
import type { PoolDestroyReason } from './pool.js';

/** One resource as this pool keeps it. generic-pool holds slots, so any value (even a primitive) can be pooled. */
export class Slot<T> implements Node {
  prev: Node | undefined = undefined;
  next: Node | undefined = undefined;
  uses = 0;
  /** performance.now() of creation or last return to the idle set. */
  idleSince: number;
  /** The lease holding it now. */
  lease: LeaseState<T> | undefined = undefined;
  /** Set before generic-pool is asked to destroy it; the destroy event reports it. */
  destroyReason: PoolDestroyReason | undefined = undefined;
  /** The error that made it go (a failed reset, `lease.destroy(reason)`), for the destroy event. */
  destroyCause: unknown = undefined;
  /** `pool.evict()` said it is dead: it is destroyed, never lent again. */
  evicted = false;
  /** The factory's destroy ran (generic-pool's clear() can hand a destroyed slot out again: see #onSlot). */
  destroyed = false;
  /** Reached us at least once (a new slot arriving proves the server works). */
  delivered = false;

  constructor(
    readonly value: T,
    readonly createdAt: number,
    readonly expiresAt: number,
    /**
     * For a failed create: the error, and the last waiter queued when it failed (a slot that only
     * carries the failure through generic-pool).
     */
    readonly failure: { readonly error: unknown; readonly waitedThrough: number } | undefined,
    /** The release and destroy functions of its leases, made once per slot rather than per lease. */
    readonly release: (value: T) => unknown,
    readonly destroy: (value: T, reason: unknown) => unknown,
  ) {
    this.idleSince = createdAt;
  }
}
