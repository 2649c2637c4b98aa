/**
 * Making a lease: `track()`'s option checks, and handing out a lease for a built state (attached to
 * its scope, or watched by the registry when no scope holds it).
 */
import { describe } from '../config/validate.js';
import { addLease } from '../registry/registry.js';
import { wake } from '../registry/sweep.js';
import type { Lease, TrackOptions } from './lease.js';
import { LeaseHandle } from './lease-handle.js';
import { LeaseState, type Owner } from './lease-state.js';
import { formatSite, type RawSite } from '../report/sites.js';
import { noop } from '../util/promises.js';
import { keepShape } from '../util/shapes.js';

/** Validates `track` options and builds the lease. The option checks are inline: this is a hot path. */
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
  if (boundary !== undefined && typeof boundary !== 'function') {
    throw new TypeError(`${where}: option 'boundary' must be a function, got ${describe(boundary)}`);
  }
  return openLease(new LeaseState<T>({ value, release, destroy, kind: kind ?? 'resource', label, raw, t0: performance.now(), owner }));
}

/** Hands out a lease for a built state: attaches it to its owner scope, or watches it as unscoped. */
export function openLease<T>(state: LeaseState<T>): Lease<T> {
  const lease = new LeaseHandle<T>(state);
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
    wake();
  }
  return lease;
}

// The shapes of a lease's state and handle, kept for the process (see util/shapes.ts).
keepShape(
  new LeaseHandle(
    keepShape(
      new LeaseState<object>({
        value: {},
        release: noop,
        destroy: undefined,
        kind: 'resource',
        label: undefined,
        raw: undefined,
        t0: performance.now(),
        owner: undefined,
      }),
    ),
  ),
);
