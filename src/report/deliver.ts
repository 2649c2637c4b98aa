/**
 * How reports and warnings leave the process: every leak report goes to the `custodian:leak`
 * diagnostics channel (and `custodian:pool:leak` for pooled resources) and the `onLeak` hook, and,
 * unless the policy says otherwise, out as a `ResourceLeakWarning`, throttled so that a handler
 * leaking on every request writes one warning per line, not one per request. Warnings about
 * releases (`ResourceReleaseWarning`) have their own door here too.
 */
import { channel } from 'node:diagnostics_channel';
import { onConfigReset, settings } from '../config/config.js';
import { channels } from './channels.js';
import { closeErrorsMessage, onLeakThrewMessage, suppressedLine, unfinishedMessage } from './messages.js';
import type { LeakedResource, LeakPolicy, LeakReport, LeakReportType, ScopeInfo } from './types.js';

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

// The throttle: when each key last warned, and how many were suppressed since. Bounded.
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

/** Emits a warning whose first line is the message and the rest its detail. */
function emit(text: string, type: 'ResourceLeakWarning' | 'ResourceReleaseWarning', code: string, detail?: string): void {
  const newline = text.indexOf('\n');
  const head = newline === -1 ? text : text.slice(0, newline);
  const rest = newline === -1 ? detail : text.slice(newline + 1) + (detail === undefined ? '' : `\n${detail}`);
  process.emitWarning(head, { type, code, ...(rest === undefined ? {} : { detail: rest }) });
}

/** The `ResourceLeakWarning` of a report (throttled per kind and site), without delivering it again. */
export function emitLeakWarning(report: LeakReport): void {
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
    if (last !== undefined && last.suppressed > 0) message += `\n${suppressedLine(last.suppressed, now - last.at, throttleMs)}`;
    if (lastWarned.size >= MAX_THROTTLE_KEYS) lastWarned.clear();
    lastWarned.set(key, { at: now, suppressed: 0 });
  }
  emit(message, 'ResourceLeakWarning', WARNING_CODES[report.type]);
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
      emit(onLeakThrewMessage(report.type, error), 'ResourceLeakWarning', 'CUSTODIAN_ONLEAK_THREW');
    }
  }
  if (warn) emitLeakWarning(report);
}

/**
 * Reports a resource given back unfinished, which had to be ended for it (a transaction neither
 * committed nor rolled back, rolled back): `undone` says how, `advice` what to do.
 */
export function reportUnfinished(resource: LeakedResource, undone: string, advice: string, policy: LeakPolicy): void {
  deliver({ type: 'unfinished', resource, undone, message: unfinishedMessage(resource, undone, advice) }, policy);
}

/**
 * A `ResourceReleaseWarning`: about a release that failed or hung where nobody could be told by an
 * error (`code`: CUSTODIAN_RELEASE_FAILED, CUSTODIAN_POOL_DESTROY_TIMEOUT, CUSTODIAN_POOL_CLOSE_HUNG).
 */
export function warnRelease(message: string, code = 'CUSTODIAN_RELEASE_FAILED'): void {
  emit(message, 'ResourceReleaseWarning', code);
}

/** A task failed and closing its scope failed too: its error is rethrown, these are told here. */
export function warnCloseErrors(scope: ScopeInfo, errors: readonly unknown[]): void {
  const { message, detail } = closeErrorsMessage(scope, errors);
  emit(message, 'ResourceReleaseWarning', 'CUSTODIAN_RELEASE_FAILED', detail);
}
