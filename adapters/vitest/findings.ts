/**
 * What a run left behind, read from custodian's registry (open scopes, held leases), the reports
 * charged to it (leases reclaimed at a scope's close, collected, destroyed at a pool's close) and,
 * when the handle check is on, its runtime handles.
 */
import {
  leasesOf,
  liveLeases,
  openScopes,
  type Originated,
  reportTitle,
  type WatchedLease,
  type WatchedScope,
} from '../../src/internal.js';
import { handlesOf } from './handles.js';
import { isIgnored, type IgnoreRules } from './ignore.js';
import { runOf, type Charge, type Run } from './runs.js';

/** One thing a test left behind. */
export interface FoundLeak {
  /**
   * `lease`: still held. `scope`: still open. `reclaimed`: custodian had to give it back (a scope
   * closed over it, its handle was garbage-collected, a release hung, or a pool's close destroyed
   * it). `handle`: a timer, socket, server... still running (handle check only).
   */
  readonly type: 'lease' | 'scope' | 'reclaimed' | 'handle';
  /** The lease's kind (`mysql connection`), `scope`, or the handle's kind (`timer`, `socket`...). */
  readonly kind: string;
  /** The lease's label, or the scope's name. */
  readonly label: string | undefined;
  /** Where it was acquired, opened or started: `file:line:column`. */
  readonly site: string | undefined;
  /** How long it had been held (or open, or running) when found; for `reclaimed`, when reclaimed. */
  readonly heldMs: number;
  /** What happened to it, for `reclaimed`; `unscoped` for a lease held by no scope. */
  readonly detail: string | undefined;
  /** The test that acquired it, when it is reported at the end of its file (after that test ended). */
  readonly test: string | undefined;
  /** For a scope: the leases it holds. */
  readonly holds: readonly FoundLeak[];
}

/** A leak, and whether the check should wait for it. */
export interface Finding {
  readonly leak: FoundLeak;
  /** Still held or running: it may yet be released, so the check waits for it. */
  readonly pending: boolean;
}

type Owns = (subject: Originated) => Run | undefined;

function leaseLeak(lease: WatchedLease, now: number, scoped: boolean, test: string | undefined): FoundLeak {
  const r = lease.leaked(now);
  return {
    type: 'lease',
    kind: r.kind,
    label: r.label,
    site: r.site,
    heldMs: r.heldMs,
    detail: scoped ? undefined : 'unscoped',
    test,
    holds: [],
  };
}

/** Open scopes and held leases that `owns` claims, outermost claimed scope first, each scope with the claimed leases under it. */
function outstanding(owns: Owns, accounted: WeakSet<object>, now: number, out: Finding[]): void {
  // Scopes come parents first, so a scope's holder (the list of its outermost claimed ancestor,
  // or its own) is known from its parent's. A flat loop: nesting depth costs no stack.
  const holders = new Map<WatchedScope, FoundLeak[] | undefined>();
  for (const scope of openScopes()) {
    const parent = (scope as WatchedScope & { readonly parent: WatchedScope | undefined }).parent;
    let holds = parent === undefined ? undefined : holders.get(parent);
    const run = accounted.has(scope) ? undefined : owns(scope);
    if (holds === undefined && run !== undefined) {
      const info = scope.info();
      const leases: FoundLeak[] = [];
      // Its t0 comes from a coarse clock (src/registry/registry.ts); the run's start bounds the age.
      const ageMs = Math.min(now - scope.t0, now - run.startedAt);
      out.push({
        leak: {
          type: 'scope',
          kind: 'scope',
          label: info.name,
          site: info.site,
          heldMs: ageMs,
          detail: reportTitle(info),
          test: lateName(run),
          holds: leases,
        },
        pending: true,
      });
      holds = leases;
    }
    if (holds !== undefined || scope.tail !== undefined) holders.set(scope, holds);
    for (const lease of leasesOf(scope)) {
      if (accounted.has(lease)) continue;
      const owner = owns(lease);
      if (owner === undefined) continue;
      if (holds !== undefined) holds.push(leaseLeak(lease, now, true, lateName(owner)));
      else out.push({ leak: leaseLeak(lease, now, true, lateName(owner)), pending: true });
    }
  }
  for (const lease of liveLeases()) {
    if (!lease.unscoped() || accounted.has(lease)) continue;
    const owner = owns(lease);
    if (owner !== undefined) out.push({ leak: leaseLeak(lease, now, false, lateName(owner)), pending: true });
  }
}

/** The test's name when a finding is reported after that test ended (at the end of its file). */
function lateName(run: Run): string | undefined {
  return run.state === 'done' && run.kind === 'test' ? run.name : undefined;
}

function reclaimedLeak(charge: Charge): FoundLeak | undefined {
  const { report, resource } = charge;
  if (resource === undefined) return undefined;
  let site = resource.site;
  const test = charge.lateFrom !== undefined && charge.lateFrom.kind === 'test' ? charge.lateFrom.name : undefined;
  let detail: string;
  switch (report.type) {
    case 'unreleased':
      detail = `${reportTitle(report.scope)} closed while it was still held; custodian released it`;
      break;
    case 'collected':
      detail = 'its lease was garbage-collected unreleased; custodian destroyed it';
      break;
    case 'unfinished':
      detail = `it was given back unfinished; it was ${report.undone}`;
      break;
    case 'release-timeout':
      detail = `its release did not settle within ${report.timeoutMs} ms when ${reportTitle(report.scope)} closed`;
      // A use()/adopt()/defer() cleanup records no site of its own: where its scope was opened says more.
      if (site === undefined && !isLease(charge.subject)) {
        site = report.scope.site;
        detail = `a use()/adopt()/defer() cleanup of that scope: ${detail}`;
      }
      break;
    case 'pool-close':
      detail = `pool "${report.pool}" closed with it still borrowed; the pool destroyed it`;
      break;
    default:
      return undefined;
  }
  return { type: 'reclaimed', kind: resource.kind, label: resource.label, site, heldMs: resource.heldMs, detail, test, holds: [] };
}

function isLease(subject: Originated | undefined): boolean {
  return subject !== undefined && (subject as { isLease?: unknown }).isLease === true;
}

/** Everything `run` left behind (for a file run: also what its ended tests left after their check). */
export function findLeftovers(run: Run, accounted: WeakSet<object>, now: number, handles: boolean): Finding[] {
  const found: Finding[] = [];
  const owns: Owns =
    run.kind === 'file'
      ? (subject) => {
          const owner = runOf(subject);
          // The file's own (hooks, callbacks of what they started), and what ended tests acquired after their check.
          return owner !== undefined && owner.belongsTo(run) && (owner === run || owner.state === 'done') && !owner.excusedLate()
            ? owner
            : undefined;
        }
      : (subject) => {
          const owner = runOf(subject);
          return owner === run ? owner : undefined;
        };
  outstanding(owns, accounted, now, found);
  // A lease whose release hung at its scope's close is in two reports (release-timeout, then
  // unreleased): one line, the one that says the release hung.
  const hung = new Set(run.charges.filter((c) => c.report.type === 'release-timeout').map((c) => c.subject));
  for (const charge of run.charges) {
    if (charge.subject !== undefined && accounted.has(charge.subject)) continue;
    if (charge.report.type === 'unreleased' && charge.subject !== undefined && hung.has(charge.subject)) continue;
    const leak = reclaimedLeak(charge);
    if (leak !== undefined) found.push({ leak, pending: false });
  }
  if (handles)
    for (const handle of handlesOf(run, now)) {
      found.push({
        leak: {
          type: 'handle',
          kind: handle.kind,
          label: undefined,
          site: handle.site,
          heldMs: handle.heldMs,
          detail: handle.via,
          test: undefined,
          holds: [],
        },
        pending: true,
      });
    }
  return found;
}

/** Drops the findings the rules ignore; a scope's held leases are filtered the same way. */
export function withoutIgnored(findings: readonly Finding[], rules: readonly IgnoreRules[]): Finding[] {
  if (rules.length === 0) return [...findings];
  const kept: Finding[] = [];
  for (const finding of findings) {
    const leak = finding.leak;
    const holds = leak.holds.filter((held) => !isIgnored(held, rules));
    if (isIgnored(leak, rules)) {
      // An ignored scope's leases are still the test's leftovers.
      for (const held of holds) kept.push({ leak: held, pending: true });
      continue;
    }
    kept.push(holds.length === leak.holds.length ? finding : { ...finding, leak: { ...leak, holds } });
  }
  return kept;
}

/**
 * Marks everything `run` acquired and custodian still knows of (held leases, open scopes, reported
 * leases) as settled by its check: reported, ignored or excused there, and never reported again
 * when a later close reclaims it. What the run acquires after this is reported at its file's end.
 */
export function settle(run: Run, accounted: WeakSet<object>): void {
  for (const scope of openScopes()) if (runOf(scope) === run) accounted.add(scope);
  for (const lease of liveLeases()) if (runOf(lease) === run) accounted.add(lease);
  for (const charge of run.charges) if (charge.subject !== undefined) accounted.add(charge.subject);
}
