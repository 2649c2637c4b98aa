/**
 * Every word custodian says to a person: the text of each report, warning and operational error,
 * one builder each, written for whoever is on call at 3 a.m.: what happened, to which resource,
 * where it was acquired, for how long, and what to do. The mechanisms (scopes, leases, the sweep,
 * the pool) gather the data and call these; none of them writes prose of its own.
 *
 * (Argument errors, `TypeError`s naming a bad option, are built by config/validate.ts.)
 */
import { inspect } from 'node:util';
import { settings } from '../config/config.js';
import type { LeakedResource, ScopeInfo } from './types.js';

// --- the small words ------------------------------------------------------------------------------

/** `scope "GET /users/:id" (#41)` or `scope #41`: cheap, for errors and abort reasons. */
export function scopeTitle(scope: { readonly id: number; readonly name: string | undefined }): string {
  return scope.name === undefined ? `scope #${scope.id}` : `scope "${scope.name}" (#${scope.id})`;
}

/** The title in reports: an unnamed scope is told apart by where it was opened. */
export function reportTitle(scope: ScopeInfo): string {
  return scope.name === undefined && scope.site !== undefined ? `scope #${scope.id} (opened at ${scope.site})` : scopeTitle(scope);
}

/** `mysql connection (primary)`, or the kind alone. */
export function resourceName(r: { readonly kind: string; readonly label: string | undefined }): string {
  return r.label === undefined ? r.kind : `${r.kind} (${r.label})`;
}

/** A site for a report line; when none was recorded, says why and how to get one. */
export function siteText(site: string | undefined): string {
  return site ?? unknownSite();
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

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** What a report says in place of a site that was not recorded, with what to do about it. */
export function unknownSite(): string {
  if (settings.sites === 'off') return '(site not recorded: sites are off; configure({ sites: "always" }) to record them)';
  if (settings.sites === 'sampled') return '(site not recorded: only a sample is; configure({ sites: "always" }) to record every one)';
  const limit = Error.stackTraceLimit;
  if (!(limit > 0)) return `(site unknown: Error.stackTraceLimit is ${String(limit)}, so no frame is recorded; set it to 10 or more)`;
  return `(site unknown: no recorded frame is outside Node, node_modules and custodian; raise Error.stackTraceLimit (now ${limit}) to record more frames, or pass your wrapper function as \`boundary\` so that the site is the line that called it)`;
}

/** One line per distinct (name, site), with a count and the longest hold, aligned in columns. */
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

const ms = (value: number) => `${Math.round(value)} ms`;

// --- reports ---------------------------------------------------------------------------------------

/** `unreleased`: a scope closed over leases its code did not release. */
export function unreleasedMessage(scope: ScopeInfo, resources: readonly LeakedResource[], cancelled: boolean): string {
  return cancelled
    ? [
        `${reportTitle(scope)} was cancelled while its task still held ${plural(resources.length, 'resource')}; they were destroyed, not released`,
        ...resourceLines(resources),
        `  The task did not stop when its signal aborted. Pass scope.signal to what it awaits so that it stops and releases its resources itself.`,
      ].join('\n')
    : [
        `${reportTitle(scope)} closed with ${plural(resources.length, 'unreleased resource')} (reclaimed)`,
        ...resourceLines(resources),
        `  Release each one on every path (\`await using lease = ...\`, or lease.release() in a finally block), or let the scope own it with scope.use() / scope.adopt().`,
      ].join('\n');
}

/** `release-timeout`: a release run by a scope's close hung past `disposeTimeoutMs`. */
export function releaseTimeoutMessage(scope: ScopeInfo, resource: LeakedResource, isLease: boolean, timeoutMs: number): string {
  const what = isLease
    ? `releasing ${resourceName(resource)} acquired at ${siteText(resource.site)}`
    : `running the cleanup of ${resourceName(resource)} (from scope.use/adopt/defer)`;
  return [
    `${reportTitle(scope)}: ${what} did not finish within ${timeoutMs} ms (disposeTimeoutMs); the scope stopped waiting and went on`,
    `  The resource may be stuck (a hung socket or a server that stopped answering) and is likely lost. Look at the release function of this kind; raise disposeTimeoutMs only if releases are legitimately slow.`,
  ].join('\n');
}

/** `stale-scope`: open longer than `staleScopeMs`. `owned` counts its use/adopt/defer cleanups. */
export function staleScopeMessage(
  scope: ScopeInfo,
  ageMs: number,
  thresholdMs: number,
  resources: readonly LeakedResource[],
  owned: number,
): string {
  const lines = resources.length > 0 ? resourceLines(resources) : [];
  if (owned > 0) lines.push(`  and ${plural(owned, 'resource')} it owns through use(), adopt() or defer()`);
  if (lines.length === 0) lines.push('  (nothing)');
  return [
    `${scopeTitle(scope)} has been open for at least ${ms(ageMs)} (staleScopeMs is ${thresholdMs}); opened at ${siteText(scope.site)}; it holds ${plural(resources.length, 'lease')}:`,
    ...lines,
    `  If its task has finished, the code that should close the scope never ran on this path: close it on every path (withScope, or \`await using scope = openScope()\`). If the task is meant to run this long, raise staleScopeMs.`,
  ].join('\n');
}

/** `stale-scope-closed`: a scope reported stale finally closed. */
export function staleScopeClosedMessage(scope: ScopeInfo, ageMs: number): string {
  return `${reportTitle(scope)}, reported stale earlier, closed after ${ms(ageMs)}`;
}

/** `held-too-long`: a lease held past `leakThresholdMs`. */
export function heldTooLongMessage(resource: LeakedResource, thresholdMs: number): string {
  return [
    `${resourceName(resource)} acquired at ${siteText(resource.site)} has been held for ${ms(resource.heldMs)} (leakThresholdMs is ${thresholdMs}) and is not released yet`,
    `  Something holds it longer than expected: a slow operation, a missing release on some path, or a threshold too low for this work. A follow-up is reported when it comes back.`,
  ].join('\n');
}

/** `returned-late`: a lease reported as held too long came back. */
export function returnedLateMessage(resource: LeakedResource, thresholdMs: number): string {
  return `${resourceName(resource)} acquired at ${siteText(resource.site)} was returned after ${ms(resource.heldMs)} (reported earlier as held longer than leakThresholdMs ${thresholdMs})`;
}

/** `collected`: an unscoped lease became garbage while held; its resource was destroyed. */
export function collectedMessage(resource: LeakedResource): string {
  return [
    `${resourceName(resource)} acquired at ${siteText(resource.site)} was garbage-collected without being released, after ${ms(resource.heldMs)}; custodian destroyed it${resource.pool === undefined ? '' : ` (pool "${resource.pool}" makes a new one)`}`,
    `  Its lease handle was dropped, but its value may still be in use, so it was not handed to anyone else. Keep the lease and release it (\`await using lease = ...\` or lease.release() in finally), or acquire it inside a scope so that the scope gives it back.`,
  ].join('\n');
}

/** `unfinished`: given back in a state that had to be undone (`undone`: how it was). */
export function unfinishedMessage(resource: LeakedResource, undone: string, advice: string): string {
  return [
    `${resourceName(resource)} begun at ${siteText(resource.site)} was given back unfinished after ${ms(resource.heldMs)}; it was ${undone}`,
    `  ${advice}`,
  ].join('\n');
}

/** `growth`: a site whose count of old outstanding leases kept rising. */
export function growthMessage(kind: string, site: string | undefined, growth: number, count: number, intervalMs: number): string {
  return [
    `possible leak: ${kind} acquired at ${siteText(site)} => outstanding count grew ${growth} times in a row, now ${count}`,
    `  Counted every ${intervalMs} ms: leases from this line held longer than that. A cache warming up stops growing; a leak does not. Check that every path from this line releases what it acquires.`,
  ].join('\n');
}

/** `pool-close`: close() timed out with resources still borrowed (`stuck`: returned, reset unfinished). */
export function poolCloseMessage(
  pool: string,
  kind: string,
  borrowed: number,
  resources: readonly LeakedResource[],
  stuck: number,
  timeoutMs: number,
): string {
  const lines = resources.length > 0 ? resourceLines(resources) : [];
  if (stuck > 0) lines.push(`  and ${plural(stuck, kind)} whose reset has not finished`);
  return [
    `pool "${pool}" closed with ${plural(borrowed, kind)} still borrowed after waiting ${timeoutMs} ms; ${resources.length === 0 ? 'each is destroyed when its reset ends' : 'the borrowed ones were destroyed'}`,
    ...lines,
    `  Close the pool after the tasks that use it have ended, and release every lease on every path (\`await using\`). Raise close({ timeout }) if tasks legitimately take longer to finish.`,
  ].join('\n');
}

/** The line a warning gains when identical ones were throttled before it. */
export function suppressedLine(count: number, sinceMs: number, throttleMs: number): string {
  return `  (${plural(count, 'similar report')} suppressed in the last ${ms(sinceMs)}; warningThrottleMs is ${throttleMs})`;
}

// --- warnings (ResourceReleaseWarning) ------------------------------------------------------------

/** A release that nobody could be told of failed: `what` was released `when`. */
export function releaseFailedMessage(what: string, when: string, error: unknown): string {
  return `releasing ${what} ${when} failed: ${errorText(error)}`;
}

/** A task failed, and closing its scope raised errors too (the task's error was rethrown). */
export function closeErrorsMessage(scope: ScopeInfo, errors: readonly unknown[]): { message: string; detail: string } {
  return {
    message: `${reportTitle(scope)} failed, and closing it raised ${plural(errors.length, 'more error')}`,
    detail: `${errors.map((e) => `  ${errorText(e)}`).join('\n')}\n  the task's own error was rethrown; getReleaseErrors(error) returns these`,
  };
}

/** The onLeak hook threw. */
export function onLeakThrewMessage(type: string, error: unknown): string {
  return `custodian: the onLeak hook threw while handling a "${type}" report: ${errorText(error)}`;
}

/** A pool's destroy outlived destroyTimeoutMs. */
export function destroyTimeoutMessage(pool: string, kind: string, timeoutMs: number): string {
  return `pool "${pool}": destroying a ${kind} did not finish within ${timeoutMs} ms (destroyTimeoutMs); it no longer counts against max, but the server may still hold it. A server that stopped answering? Look at the factory's destroy.`;
}

/** A pool's close() gave up on a create or destroy. */
export function closeHungMessage(pool: string, timeoutMs: number): string {
  return `pool "${pool}": close() stopped waiting after ${timeoutMs} ms for a create or destroy that has not finished; a server that stopped answering? The resource may stay open`;
}

// --- errors ---------------------------------------------------------------------------------------

export const scopeMessages = {
  timedOut: (scope: ScopeInfo | { id: number; name: string | undefined }, timeoutMs: number) =>
    `${scopeTitle(scope)} timed out after ${timeoutMs} ms`,
  cancelled: (scope: { id: number; name: string | undefined }) => `${scopeTitle(scope)} was cancelled`,
  closed: (scope: { id: number; name: string | undefined }) => `${scopeTitle(scope)} closed`,
  closedWhileRunning: (scope: { id: number; name: string | undefined }) =>
    `${scopeTitle(scope)} was closed while its task was still running`,
  closedOverChild: (parent: { id: number; name: string | undefined }, child: { id: number; name: string | undefined }) =>
    `${scopeTitle(parent)} closed while its child ${scopeTitle(child)} was still open`,
  /** Something was handed to, or run in, a scope that no longer takes anything. */
  refused: (scope: { id: number; name: string | undefined }, state: string, action: string, handedOver: boolean) =>
    handedOver
      ? `cannot ${action} ${scopeTitle(scope)}: it is ${state}. What was handed over was released at once. Acquire resources while the task runs, or in a longer-lived scope.`
      : `cannot ${action} ${scopeTitle(scope)}: it is ${state}. This code is running after its task ended.`,
  openInside: (where: string, parent: { id: number; name: string | undefined }, state: string) =>
    `${where}: cannot open a scope inside ${scopeTitle(parent)}: it is ${state}. This code is still running after its task ended (a cancelled or abandoned task?).`,
  /** Why a scope's close gave a lease back: its `releasedHow`. */
  reclaimedBy: (scope: { id: number; name: string | undefined }) =>
    `was reclaimed when ${scopeTitle(scope)} closed: the lease outlived its task`,
  /** Several errors folded into one SuppressedError. */
  folded: (scopeLabel: string, count: number) =>
    `${scopeLabel}: ${count} errors while closing (failed releases, or leaks under the throw policy); \`error\` is the last, \`suppressed\` holds the earlier ones`,
};

export const leaseMessages = {
  /** Who gave a lease back, for the LeaseReleasedError message. */
  releasedByCode: 'was already released',
  releasedByGc: 'was destroyed by custodian after its handle was garbage-collected',
  useAfterRelease: (resource: { kind: string; label: string | undefined }, site: string | undefined, how: string) =>
    `${resourceName(resource)}${site === undefined ? '' : ` acquired at ${site}`} ${how}; use its value only while you hold the lease`,
  /** The reason a collected lease's destroy is given. */
  collected: (resource: LeakedResource) =>
    `${resourceName(resource)} acquired at ${siteText(resource.site)} was destroyed: its lease was garbage-collected unreleased`,
  destroyedAtPoolClose: (pool: string, timeoutMs: number) =>
    `was destroyed when pool "${pool}" closed (close() timed out after ${timeoutMs} ms)`,
};

export const poolMessages = {
  closed: (pool: string) => `pool.acquire(): pool "${pool}" is closed; it hands out nothing more`,
  closedWhileWaiting: (pool: string) => `pool "${pool}" was closed while this acquire waited`,
  closedWhileBorrowed: (pool: string, kind: string) => `pool "${pool}" closed while this ${kind} was still borrowed`,
  full: (pool: string, kind: string, max: number, waiting: number, borrowed: number, maxWaiting: number) =>
    `pool.acquire(): pool "${pool}" is full: ${waiting} acquires already wait for its ${max} ${kind}s (${borrowed} borrowed; maxWaiting is ${maxWaiting})`,
  createFailed: (pool: string, kind: string, error: unknown) =>
    `pool.acquire(): creating a ${kind} for pool "${pool}" failed (${errorText(error)}), and nothing else could serve this acquire: none is borrowed, none is being created or checked`,
  refusedInScope: (pool: string, kind: string, scope: { id: number; name: string | undefined }, state: string) =>
    `pool.acquire(): cannot acquire a ${kind} from pool "${pool}" in ${scopeTitle(scope)}: it is ${state}. This code is running after its task ended.`,
  hookHung: (pool: string, hook: string, limitMs: number, kind: string) =>
    `pool "${pool}": ${hook} did not finish within ${limitMs} ms (acquireTimeoutMs); the ${kind} was destroyed`,
  /** Why an acquire timed out, from what the pool saw while it waited. */
  timedOut: (t: {
    pool: string;
    kind: string;
    max: number;
    waitMs: number;
    ownTimeout: boolean;
    borrowed: number;
    available: number;
    pending: number;
    destroying: number;
    destroyTimeoutMs: number;
    createFailedMsAgo: number | undefined;
    validateFailedMsAgo: number | undefined;
    longestHeld: readonly LeakedResource[];
  }) => {
    const held =
      t.longestHeld.length === 0
        ? 'none is held by a lease right now'
        : `held longest: ${t.longestHeld.map((r) => `${siteText(r.site)} for ${ms(r.heldMs)}`).join(', ')}`;
    return [
      `pool.acquire(): no ${t.kind} from pool "${t.pool}" within ${ms(t.waitMs)} (${t.ownTimeout ? "the acquire's timeout" : 'acquireTimeoutMs'}); ${t.borrowed} of ${t.max} borrowed, ${t.available} idle, ${t.pending} more waiting${t.destroying > 0 ? `, ${t.destroying} still being destroyed` : ''}.`,
      t.createFailedMsAgo !== undefined
        ? ` Creating one failed ${ms(t.createFailedMsAgo)} ago (see cause): is the server up?`
        : t.validateFailedMsAgo !== undefined
          ? ` Idle ones failed validate and were destroyed (the last ${ms(t.validateFailedMsAgo)} ago), and no new one came in time: is the server answering?`
          : t.borrowed >= t.max
            ? ` Every one is borrowed: the pool is too small for the load, or leases are not given back (${held}).`
            : t.destroying > 0 && t.borrowed + t.destroying >= t.max
              ? ` The ones being destroyed still count against max until their destroy finishes (destroyTimeoutMs is ${t.destroyTimeoutMs}): is the server slow to let go of them?`
              : ' Creating or validating one is taking this long: is the server slow to answer?',
    ].join('');
  },
};
