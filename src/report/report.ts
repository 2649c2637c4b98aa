/**
 * Leak reports: the data (a JSON-serialisable object per report) and the text the on-call engineer
 * reads, and the three ways they leave the process: a `ResourceLeakWarning`, the `custodian:leak`
 * diagnostics channel and the `onLeak` hook.
 */
import { channel } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { channels } from './channels.js';
import { onConfigReset, settings, type LeakPolicy } from '../config/config.js';
import { unknownSite } from '../lease/sites.js';

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

// --- text -----------------------------------------------------------------------------------------

/** `scope "GET /users/:id" (#41)` or `scope #41`: cheap, for errors and abort reasons. */
export function scopeTitle(scope: { readonly id: number; readonly name: string | undefined }): string {
  return scope.name === undefined ? `scope #${scope.id}` : `scope "${scope.name}" (#${scope.id})`;
}

/** The title in reports: an unnamed scope is told apart by where it was opened. */
export function reportTitle(scope: ScopeInfo): string {
  return scope.name === undefined && scope.site !== undefined ? `scope #${scope.id} (opened at ${scope.site})` : scopeTitle(scope);
}

/** Text for any thrown value, even one whose String() throws (a null-prototype object). */
export function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  try {
    return String(error);
  } catch {
    return inspect(error, { depth: 1, breakLength: Infinity });
  }
}

export function resourceName(r: { kind: string; label: string | undefined }): string {
  return r.label === undefined ? r.kind : `${r.kind} (${r.label})`;
}

/** A site for a report line; when none was recorded, says why and how to get one. */
export function siteText(site: string | undefined): string {
  return site ?? unknownSite();
}

/** One line per distinct (kind, label, site), with a count and the longest hold, aligned in columns. */
export function resourceLines(resources: readonly LeakedResource[]): string[] {
  const groups = new Map<string, { name: string; site: string; count: number; heldMs: number }>();
  for (const r of resources) {
    const name = resourceName(r);
    const site = siteText(r.site);
    const key = `${name}\0${site}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { name, site, count: 1, heldMs: r.heldMs });
    else {
      group.count++;
      group.heldMs = Math.max(group.heldMs, r.heldMs);
    }
  }
  const rows = [...groups.values()];
  const nameWidth = Math.max(...rows.map((r) => r.name.length));
  const countWidth = Math.max(...rows.map((r) => String(r.count).length));
  const siteWidth = Math.max(...rows.map((r) => r.site.length));
  return rows.map(
    (r) =>
      `  ${r.name.padEnd(nameWidth)}  x${String(r.count).padEnd(countWidth)}  acquired at ${r.site.padEnd(siteWidth)}  held ${Math.round(r.heldMs)} ms`,
  );
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

// --- delivery -------------------------------------------------------------------------------------

const leakChannel = channel(channels.leak);
const poolLeakChannel = channel(channels.poolLeak);

/** The pools whose resources a report names (each once). */
function poolsIn(report: LeakReport): string[] {
  if (report.type === 'pool-close') return [report.pool];
  const resources = 'resources' in report ? report.resources : 'resource' in report ? [report.resource] : [];
  const names: string[] = [];
  for (const r of resources) if (r.pool !== undefined && !names.includes(r.pool)) names.push(r.pool);
  return names;
}

const WARNING_CODES: Record<LeakReportType, string> = {
  unreleased: 'CUSTODIAN_UNRELEASED',
  'release-timeout': 'CUSTODIAN_RELEASE_TIMEOUT',
  'stale-scope': 'CUSTODIAN_STALE_SCOPE',
  'stale-scope-closed': 'CUSTODIAN_STALE_SCOPE_CLOSED',
  'held-too-long': 'CUSTODIAN_HELD_TOO_LONG',
  'returned-late': 'CUSTODIAN_RETURNED_LATE',
  collected: 'CUSTODIAN_COLLECTED',
  unfinished: 'CUSTODIAN_UNFINISHED',
  growth: 'CUSTODIAN_GROWTH',
  'pool-close': 'CUSTODIAN_POOL_CLOSE',
};

// Throttle identical warnings: a handler that leaks on every request must not write a warning per
// request. The key (throttleKey) is the report type plus what identifies the place; the map is bounded.
const lastWarned = new Map<string, { at: number; suppressed: number }>();
const MAX_THROTTLE_KEYS = 1000;

/**
 * Reports of the same type about the same kinds of resource from the same lines are one warning
 * per window, whatever their scopes are called: a service that names scopes per request
 * (`GET /users/42`) would otherwise print one warning per leaking request.
 */
function throttleKey(report: LeakReport): string {
  const where = (r: LeakedResource) => `${r.kind}\0${r.site ?? ''}`;
  switch (report.type) {
    case 'unreleased':
      return `${report.type}\0${report.cancelled}\0${report.resources.map(where).join('\0')}`;
    case 'release-timeout':
      return `${report.type}\0${where(report.resource)}\0${report.resource.label ?? ''}`;
    case 'held-too-long':
    case 'returned-late':
    case 'collected':
    case 'unfinished':
      return `${report.type}\0${where(report.resource)}`;
    case 'stale-scope':
    case 'stale-scope-closed':
      // A scope's "kind" is its opening line; with no site recorded, its name is all there is.
      return `${report.type}\0${report.scope.site ?? `name:${report.scope.name ?? ''}`}`;
    case 'growth':
      return `${report.type}\0${report.kind}\0${report.site ?? ''}`;
    case 'pool-close':
      return `${report.type}\0${report.pool}`;
  }
}

function emitLeakWarning(report: LeakReport): void {
  let message = report.message;
  const throttleMs = settings.warningThrottleMs;
  if (throttleMs > 0) {
    const key = throttleKey(report);
    const now = performance.now();
    const last = lastWarned.get(key);
    if (last !== undefined && now - last.at < throttleMs) {
      last.suppressed++;
      return;
    }
    if (last !== undefined && last.suppressed > 0) {
      message += `\n  (${plural(last.suppressed, 'similar report')} suppressed in the last ${Math.round(now - last.at)} ms; warningThrottleMs is ${throttleMs})`;
    }
    if (lastWarned.size >= MAX_THROTTLE_KEYS) lastWarned.clear();
    lastWarned.set(key, { at: now, suppressed: 0 });
  }
  const newline = message.indexOf('\n');
  process.emitWarning(newline === -1 ? message : message.slice(0, newline), {
    type: 'ResourceLeakWarning',
    code: WARNING_CODES[report.type],
    ...(newline === -1 ? {} : { detail: message.slice(newline + 1) }),
  });
}

/** Forgets throttling state (tests; resetConfig() does it too). */
export function resetWarningThrottle(): void {
  lastWarned.clear();
}
onConfigReset(resetWarningThrottle);

/**
 * Sends a report out: always to the diagnostics channel and the `onLeak` hook, and as a
 * `ResourceLeakWarning` unless the policy is `reclaim` (or `throw` for scope-end leaks, which
 * become a `LeakError` instead).
 */
export function deliver(report: LeakReport, policy: LeakPolicy, warn = policy !== 'reclaim'): void {
  if (leakChannel.hasSubscribers) leakChannel.publish(report);
  if (poolLeakChannel.hasSubscribers) for (const pool of poolsIn(report)) poolLeakChannel.publish({ pool, report });
  const hook = settings.onLeak;
  if (hook !== undefined) {
    try {
      hook(report);
    } catch (error) {
      process.emitWarning(`custodian: the onLeak hook threw while handling a "${report.type}" report: ${errorText(error)}`, {
        type: 'ResourceLeakWarning',
        code: 'CUSTODIAN_ONLEAK_THREW',
      });
    }
  }
  if (warn) emitLeakWarning(report);
}

/**
 * Reports a resource given back unfinished, which had to be ended for it (a transaction
 * neither committed nor rolled back, rolled back): `undone` says how, `advice` what to do.
 */
export function reportUnfinished(resource: LeakedResource, undone: string, advice: string, policy: LeakPolicy): void {
  deliver(
    {
      type: 'unfinished',
      resource,
      undone,
      message: [
        `${resourceName(resource)} begun at ${siteText(resource.site)} was given back unfinished after ${Math.round(resource.heldMs)} ms; it was ${undone}`,
        `  ${advice}`,
      ].join('\n'),
    },
    policy,
  );
}

/** Reports that a task failed and releasing its resources failed too (the task's error is rethrown). */
export function warnReleaseErrors(scope: ScopeInfo, errors: readonly unknown[]): void {
  const lines = errors.map((e) => `  ${errorText(e)}`);
  process.emitWarning(`${reportTitle(scope)} failed, and closing it raised ${plural(errors.length, 'more error')}`, {
    type: 'ResourceReleaseWarning',
    code: 'CUSTODIAN_RELEASE_FAILED',
    detail: `${lines.join('\n')}\n  the task's own error was rethrown; getReleaseErrors(error) returns these`,
  });
}
