/**
 * `inspect()`: a JSON-serialisable snapshot of what is alive now — open scopes, outstanding leases
 * grouped by acquisition site, and growth suspects. For a debug endpoint or a heap-growth alert.
 */
import { settings } from './config.js';
import type { GrowthSuspect } from './growth.js';
import { newestFirst } from './list.js';
import { growth, leasesOf, openScopes, unscoped, type WatchedLease } from './registry.js';
import type { Scope, ScopeState } from './scope.js';
import { openPools, type PoolStats } from './pool.js';
import { formatSite } from './sites.js';
import { rules, validateOptions } from './validate.js';

const optionRules = { maxScopes: rules.count };

/** An open scope in a snapshot. */
export interface ScopeSnapshot {
  readonly id: number;
  readonly name: string | undefined;
  readonly parentId: number | undefined;
  readonly state: ScopeState;
  readonly site: string | undefined;
  readonly ageMs: number;
  /** Leases it holds (not counting its children's). */
  readonly leases: number;
  /** True when it was reported as stale. */
  readonly stale: boolean;
}

/** Outstanding leases acquired at one site. */
export interface SiteSnapshot {
  readonly kind: string;
  readonly site: string | undefined;
  readonly count: number;
  /** How many of them belong to no scope. */
  readonly unscoped: number;
  /** How long the oldest of them has been held. */
  readonly oldestMs: number;
}

/** A pool that is not closed, with its counts (see `pool.stats()`). */
export interface PoolSnapshot extends PoolStats {
  readonly name: string;
}

/** What `inspect()` returns. */
export interface Snapshot {
  readonly takenAt: string;
  readonly scopes: { readonly open: number; readonly oldest: readonly ScopeSnapshot[] };
  readonly leases: { readonly outstanding: number; readonly unscoped: number; readonly bySite: readonly SiteSnapshot[] };
  /** Pools created and not yet closed, in creation order. */
  readonly pools: readonly PoolSnapshot[];
  readonly suspects: readonly GrowthSuspect[];
}

/** Options of `inspect()`. */
export interface InspectOptions {
  /** At most this many scopes are listed (the oldest). Default 100. */
  maxScopes?: number;
}

/**
 * Returns a snapshot of open scopes (oldest first), outstanding leases grouped by site (largest
 * group first), growth suspects and the stats of every open pool. Formatting sites costs about 10 µs each the first time.
 */
export function inspect(options: InspectOptions = {}): Snapshot {
  validateOptions('inspect()', options, optionRules);
  const maxScopes = options.maxScopes ?? 100;
  const now = performance.now();
  const scopes: ScopeSnapshot[] = [];
  const sites = new Map<string, { kind: string; site: string | undefined; count: number; unscoped: number; oldestMs: number }>();
  const count = (lease: WatchedLease, isUnscoped: boolean) => {
    const site = formatSite(lease.raw);
    const key = `${lease.kind}\0${site ?? ''}`;
    const heldMs = now - lease.t0;
    const entry = sites.get(key);
    if (entry === undefined) sites.set(key, { kind: lease.kind, site, count: 1, unscoped: isUnscoped ? 1 : 0, oldestMs: heldMs });
    else {
      entry.count++;
      if (isUnscoped) entry.unscoped++;
      entry.oldestMs = Math.max(entry.oldestMs, heldMs);
    }
  };
  let outstanding = 0;
  let unscopedCount = 0;
  for (const watched of openScopes()) {
    const scope = watched as Scope;
    let leases = 0;
    for (const lease of leasesOf(scope)) {
      leases++;
      count(lease, false);
    }
    outstanding += leases;
    scopes.push({
      id: scope.id,
      name: scope.name,
      parentId: scope.parent?.id,
      state: scope.state,
      site: scope.site,
      ageMs: now - scope.t0,
      leases,
      stale: scope.reportedStale,
    });
  }
  for (const lease of newestFirst(unscoped)) {
    unscopedCount++;
    count(lease, true);
  }
  outstanding += unscopedCount;
  const open = scopes.length;
  scopes.sort((a, b) => b.ageMs - a.ageMs);
  return {
    takenAt: new Date().toISOString(),
    scopes: { open, oldest: scopes.slice(0, maxScopes) },
    leases: { outstanding, unscoped: unscopedCount, bySite: [...sites.values()].sort((a, b) => b.count - a.count) },
    suspects: growth.suspects(settings.growthSamples),
    pools: [...openPools].map((pool) => ({ name: pool.name, ...pool.stats() })),
  };
}
