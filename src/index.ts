/**
 * custodian: every resource a task acquires is released when the task ends, and every resource
 * the code forgot to release is reported with the line that acquired it.
 *
 * This module is the whole public surface. Scopes, leases and pools are handed out by the
 * functions below and held through their interfaces; none of them can be constructed directly.
 */

// Scopes and the current scope.
export { currentScope, openScope, track, withScope } from './scope/context.js';
export type { Scope, ScopeOptions, ScopeState } from './scope/scope.js';

// Leases.
export type { Lease, TrackOptions } from './lease/lease.js';

// Pools.
export { createPool } from './pool/create-pool.js';
export type { Pool, PoolDestroyReason, PoolStats } from './pool/pool.js';
export type { AcquireOptions, PoolCloseOptions, PoolFactory, PoolOptions } from './pool/options.js';

// Settings.
export { configure, getConfig, resetConfig, type Config, type LeakPolicy, type Settings, type SiteCapture } from './config/config.js';

// Looking inside.
export {
  inspect,
  type AdapterSnapshot,
  type InspectOptions,
  type PoolSnapshot,
  type ScopeSnapshot,
  type SiteSnapshot,
  type Snapshot,
} from './registry/inspect.js';
export type { GrowthSuspect } from './registry/growth.js';
export { channels, LEAK_CHANNEL } from './report/channels.js';
export type { LeakedResource, LeakReport, LeakReportType, ScopeInfo } from './report/types.js';

// Errors.
export {
  CustodianError,
  flattenSuppressed,
  getReleaseErrors,
  LeakError,
  LeaseReleasedError,
  PoolClosedError,
  PoolCreateError,
  PoolFullError,
  PoolTimeoutError,
  ScopeClosedError,
  ScopeTimeoutError,
  SuppressedError,
  type SuppressedErrorLike,
} from './errors.js';
