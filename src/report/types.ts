/**
 * What a leak report is, as data: one JSON-serialisable object per report, the same whether it
 * reaches `onLeak`, the `custodian:leak` channel or a `ResourceLeakWarning`.
 */

/** What to do when code leaves a lease unreleased at scope end. */
export type LeakPolicy = 'reclaim' | 'warn' | 'throw';

/** One resource named in a report. */
export interface LeakedResource {
  /** What it is, as given to `track` (`mysql connection`). */
  readonly kind: string;
  /** Which one, when given (`primary`, a query, a file name). */
  readonly label: string | undefined;
  /** Where it was acquired (`src/routes/users.ts:42:18`), when recorded. */
  readonly site: string | undefined;
  /**
   * How long it had been held when the report was made, in ms. For a use/adopt/defer cleanup in a
   * `release-timeout` report: how long the cleanup ran before the scope gave up on it.
   */
  readonly heldMs: number;
  /** The name of the pool it was borrowed from, for pooled resources. */
  readonly pool?: string;
}

/** The scope a report is about. */
export interface ScopeInfo {
  readonly id: number;
  readonly name: string | undefined;
  /** Where the scope was opened, when recorded. */
  readonly site: string | undefined;
}

interface ReportBase {
  /** The full human-readable text: a headline, one line per resource, and what to do. */
  readonly message: string;
}

/** The report types, one per way of leaking. */
export type LeakReport =
  /**
   * A scope closed while the code still held leases; they were reclaimed (or, for a task cancelled
   * while its body still ran, destroyed: see `cancelled`).
   */
  | (ReportBase & {
      readonly type: 'unreleased';
      readonly scope: ScopeInfo;
      readonly resources: readonly LeakedResource[];
      readonly policy: LeakPolicy;
      /**
       * True when the scope's close started while its body was still running and the scope had
       * been cancelled (its timeout or signal, `cancel()`, an ancestor's cancellation, a parent
       * closing over it, or `close()` called from outside the task): the resources were destroyed, not released, and this is not counted as a
       * leak (no `LeakError`). When a plain scope's `withScope` waits for its cancelled body to
       * settle and then closes, the body is no longer running: leftovers are ordinary leaks.
       */
      readonly cancelled: boolean;
    })
  /** A release run by a scope's close did not settle within `disposeTimeoutMs`; the close moved on. */
  | (ReportBase & {
      readonly type: 'release-timeout';
      readonly scope: ScopeInfo;
      readonly resource: LeakedResource;
      readonly timeoutMs: number;
    })
  /** A scope has been open longer than `staleScopeMs`: its task's end never ran. */
  | (ReportBase & {
      readonly type: 'stale-scope';
      readonly scope: ScopeInfo;
      readonly ageMs: number;
      readonly thresholdMs: number;
      readonly resources: readonly LeakedResource[];
    })
  /** A scope reported stale finally closed. */
  | (ReportBase & { readonly type: 'stale-scope-closed'; readonly scope: ScopeInfo; readonly ageMs: number })
  /** A lease has been held longer than `leakThresholdMs`. */
  | (ReportBase & { readonly type: 'held-too-long'; readonly resource: LeakedResource; readonly thresholdMs: number })
  /** A lease reported as held too long was given back. */
  | (ReportBase & { readonly type: 'returned-late'; readonly resource: LeakedResource; readonly thresholdMs: number })
  /** A lease became garbage without being released; its resource was destroyed by custodian. */
  | (ReportBase & { readonly type: 'collected'; readonly resource: LeakedResource })
  /**
   * A resource was given back in a state its code should have ended, and custodian (or an adapter)
   * ended it: a transaction neither committed nor rolled back, rolled back. `undone` says how.
   */
  | (ReportBase & { readonly type: 'unfinished'; readonly resource: LeakedResource; readonly undone: string })
  /** A pool's `close()` timed out with resources still borrowed; they were destroyed. */
  | (ReportBase & {
      readonly type: 'pool-close';
      readonly pool: string;
      readonly timeoutMs: number;
      readonly resources: readonly LeakedResource[];
    })
  /** The count of outstanding leases acquired at one site grew in consecutive samples. */
  | (ReportBase & {
      readonly type: 'growth';
      readonly kind: string;
      readonly site: string | undefined;
      readonly count: number;
      readonly growth: number;
      readonly intervalMs: number;
    });

/** The `type` of each report. */
export type LeakReportType = LeakReport['type'];
