/**
 * custodian: every resource a task acquires is released when the task ends, and every resource
 * the code forgot to release is reported with the line that acquired it.
 */
export { withScope, currentScope, openScope, track } from './scope/context.js';
export { Scope, type ScopeOptions, type ScopeState } from './scope/scope.js';
export { channels, LEAK_CHANNEL } from './report/channels.js';
export { Lease, type TrackOptions } from './lease/lease.js';
export { createPool, Pool, type PoolStats, type PoolDestroyReason } from './pool/pool.js';
export type { PoolFactory, PoolOptions, AcquireOptions, PoolCloseOptions } from './pool/options.js';
export { configure, getConfig, resetConfig, type Config, type Settings, type LeakPolicy, type SiteCapture } from './config/config.js';
export {
  inspect,
  type Snapshot,
  type ScopeSnapshot,
  type SiteSnapshot,
  type PoolSnapshot,
  type AdapterSnapshot,
  type InspectOptions,
} from './report/inspect.js';
export {
  CustodianError,
  LeakError,
  LeaseReleasedError,
  PoolClosedError,
  PoolCreateError,
  PoolFullError,
  PoolTimeoutError,
  ScopeClosedError,
  ScopeTimeoutError,
  SuppressedError,
  flattenSuppressed,
  getReleaseErrors,
  type SuppressedErrorLike,
} from './errors.js';
export { type LeakReport, type LeakReportType, type LeakedResource, type ScopeInfo } from './report/report.js';
export type { GrowthSuspect } from './registry/growth.js';
