/**
 * Charges leak reports to the runs that acquired what they are about. custodian publishes every
 * report on the `custodian:leak` channel; while test mode is on, the core maps each resource of a
 * report back to its lease, which records the run that acquired it (see src/report/origin.ts).
 */
import { subscribe } from 'node:diagnostics_channel';
import { LEAK_CHANNEL, type LeakReport, type LeakedResource } from '../../src/index.js';
import { type Originated, subjects } from '../../src/internal.js';
import { runOf, type Charge, type Run } from './runs.js';

/** The resources of a report that are leaks a test made (a cancelled task's leftovers are not). */
function leakedBy(report: LeakReport): readonly LeakedResource[] {
  switch (report.type) {
    case 'unreleased':
      return report.cancelled ? [] : report.resources;
    case 'collected':
    case 'release-timeout':
    case 'unfinished':
      return [report.resource];
    case 'pool-close':
      return report.resources;
    default:
      // held-too-long, returned-late, stale-scope(-closed), growth: about time, not about what was left behind.
      return [];
  }
}

function charge(run: Run, entry: Charge): void {
  // Nothing an excused run leaves is reported: keeping its reports would only hold memory.
  if (run.state === 'done' ? run.excusedLate() : run.excused()) return;
  if (run.state !== 'done') {
    run.charges.push(entry);
    return;
  }
  // Never a later test's fault: it goes to the enclosing run still open (a finished test's to its file).
  const target = run.openAncestor();
  if (target !== undefined) target.charges.push({ ...entry, lateFrom: run });
}

function onReport(message: unknown): void {
  const report = message as LeakReport;
  for (const resource of leakedBy(report)) {
    // A release-timeout about a use()/adopt()/defer() cleanup has no lease: its scope tells who.
    let subject: Originated | undefined = subjects.get(resource);
    if (subject === undefined && report.type === 'release-timeout') subject = subjects.get(report.scope);
    const run = runOf(subject);
    if (run !== undefined) charge(run, { report, resource, subject });
  }
}

let subscribed = false;

/** Starts charging reports to runs. Idempotent. */
export function chargeReports(): void {
  if (subscribed) return;
  subscribed = true;
  subscribe(LEAK_CHANNEL, onReport);
}
