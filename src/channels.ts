/** The names of the diagnostics channels custodian publishes on, in one place. */

/** Names of the diagnostics channels custodian publishes on. */
export const channels = {
  /** Every leak report (a `LeakReport`). */
  leak: 'custodian:leak',
  /** `{ scope }` when a scope opens. */
  scopeOpen: 'custodian:scope:open',
  /** `{ scope, durationMs }` when a scope has closed. */
  scopeClose: 'custodian:scope:close',
} as const;

/** The diagnostics channel every leak report is published on (same as `channels.leak`). */
export const LEAK_CHANNEL = channels.leak;
