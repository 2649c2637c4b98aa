/**
 * What is alive: every open scope and every held lease, each in one chain in arrival order (see
 * chain.ts), so that every walk over them is a flat loop, oldest first. The sweep (sweep.ts)
 * watches them for the leaks that only time shows.
 *
 * Open scopes are held strongly on purpose: a scope whose task never ended is a leak to report,
 * not something to let the garbage collector hide. An unscoped lease's handle is watched through a
 * FinalizationRegistry, so that a lease dropped without release is noticed and its resource
 * destroyed (never handed to someone else: the code may still be using it).
 */
import type { RawSite } from '../report/sites.js';
import type { Originated } from '../report/origin.js';
import type { LeakedResource, LeakPolicy, ScopeInfo } from '../report/types.js';
import { Chain, type Linked } from './chain.js';
import { newestFirst, type List, type Node } from './list.js';

/** What the registry needs of a resource entry in a scope. */
export interface WatchedEntry extends Node {
  readonly isLease: boolean;
}

/** What the registry needs of a lease (implemented by `LeaseState`). */
export interface WatchedLease extends WatchedEntry, Linked, Originated {
  readonly kind: string;
  readonly label: string | undefined;
  readonly raw: RawSite | undefined;
  readonly t0: number;
  reportedLong: boolean;
  /** What a report says of it, now. */
  leaked(now: number): LeakedResource;
  /** The leak policy that applies to it: its scope's, else the global one. */
  leakPolicy(): LeakPolicy;
  /** The held-too-long threshold that applies to it: its pool's own, else the global one. */
  thresholdMs(): number;
  /** True when no scope holds it. */
  unscoped(): boolean;
  /** Called when the lease's handle was garbage-collected while the lease was still held. */
  collect(): void;
}

/** What the registry needs of a scope (implemented by `Scope`). */
export interface WatchedScope extends Node, Linked, List<WatchedScope>, Originated {
  readonly id: number;
  readonly name: string | undefined;
  readonly parent: { readonly id: number } | undefined;
  readonly state: 'open' | 'closing' | 'closed';
  /** Where it was opened, formatted (see sites.ts). */
  readonly site: string | undefined;
  readonly t0: number;
  /** When the sweep first saw it open (NaN: not yet). It was open then, so its age is at least `now - seenAt`. */
  seenAt: number;
  reportedStale: boolean;
  entries: List<WatchedEntry>;
  info(): ScopeInfo;
  /** Its own leak policy, else its parent's, else the global one. */
  leakPolicy(): LeakPolicy;
}

/** Every open scope, oldest first: a parent always comes before its children. */
export const scopes = new Chain<WatchedScope>();

/** Every held lease, scoped or not, oldest first. */
export const leases = new Chain<WatchedLease>();

let unscopedCount = 0;

/** Leases held by no scope. */
export function unscopedLeases(): number {
  return unscopedCount;
}

const collected = new FinalizationRegistry<WatchedLease>((lease) => lease.collect());

/** Registers an open scope. */
export function addScope(scope: WatchedScope): void {
  scopes.append(scope);
}

export function removeScope(scope: WatchedScope): void {
  scopes.unlink(scope);
}

/** Registers a held lease; `handle` is what the user holds, for a lease with no scope (watched for garbage). */
export function addLease(lease: WatchedLease, handle: object | undefined): void {
  leases.append(lease);
  if (handle !== undefined) {
    unscopedCount++;
    collected.register(handle, lease, lease);
  }
}

export function removeLease(lease: WatchedLease, unscoped: boolean): void {
  leases.unlink(lease);
  if (unscoped) {
    unscopedCount--;
    collected.unregister(lease);
  }
}

// --- walking ------------------------------------------------------------------------------------

/** Every open scope, parents before their children. */
export function openScopes(): Iterable<WatchedScope> {
  return scopes;
}

/** The leases a scope holds (not its children's). */
export function* leasesOf(scope: WatchedScope): Generator<WatchedLease> {
  for (const entry of newestFirst(scope.entries)) if (entry.isLease) yield entry as WatchedLease;
}

/** Every held lease, oldest first. */
export function liveLeases(): Iterable<WatchedLease> {
  return leases;
}
