/** The names of the diagnostics channels custodian publishes on, in one place. */

/** Names of the diagnostics channels custodian publishes on. */
export const channels = {
  /** Every leak report (a `LeakReport`). */
  leak: 'custodian:leak',
  /** `{ scope }` when a scope opens. */
  scopeOpen: 'custodian:scope:open',
  /** `{ scope, durationMs }` when a scope has closed. */
  scopeClose: 'custodian:scope:close',
  /** `{ pool, waitMs }` when a pool hands out a resource. */
  poolAcquire: 'custodian:pool:acquire',
  /** `{ pool, heldMs }` when a pooled resource is given back (before `reset` runs). */
  poolRelease: 'custodian:pool:release',
  /** `{ pool, durationMs, error? }` when a pool's `create` settles (`error` when it failed). */
  poolCreate: 'custodian:pool:create',
  /** `{ pool, reason, error? }` when a pool destroys a resource; `reason` says why (see PoolDestroyReason). */
  poolDestroy: 'custodian:pool:destroy',
  /** `{ pool, waitMs, stats }` when an acquire gives up after its timeout. */
  poolTimeout: 'custodian:pool:timeout',
  /** `{ pool, report }` for every leak report about a resource of the pool (also on `custodian:leak`). */
  poolLeak: 'custodian:pool:leak',
  /**
   * `{ durationMs, phase, done, scopes, leases }` after each slice of the periodic sweep: how long
   * it held the event loop (a slice stops after about 1 ms of work), the phase it
   * stopped in (`stale`, `held`, `growth`, `done`), whether the pass is over, and how many scopes
   * and leases were open. For watching what custodian costs a busy process.
   */
  sweep: 'custodian:sweep',
} as const;

/** The diagnostics channel every leak report is published on (same as `channels.leak`). */
export const LEAK_CHANNEL = channels.leak;
