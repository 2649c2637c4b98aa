/**
 * `inspect()`: a JSON-serialisable snapshot of what is alive now — open scopes, outstanding leases
 * grouped by acquisition site, and growth suspects. For a debug endpoint or a heap-growth alert.
 */
import { settings } from '../config/config.js';
import { rules, validateOptions } from '../config/validate.js';
import { formatSite } from '../report/sites.js';
import type { GrowthSuspect } from './growth.js';
import { leases, leasesOf, scopes, unscopedLeases } from './registry.js';
import { growth } from './sweep.js';

const optionRules = { maxScopes: rules.count, maxLeases: rules.count };

/** An open scope in a snapshot. */
export interface ScopeSnapshot {
  readonly id: number;
  readonly name: string | undefined;
  readonly parentId: number | undefined;
  readonly state: 'open' | 'closing' | 'closed';
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

/** What an adapter shows in `inspect()` beside the pools: a shared client, a server's requests in flight. */
export interface AdapterSnapshot {
  readonly name: string;
  /** What it is: `redis client`, `http server`. */
  readonly kind: string;
  readonly [stat: string]: string | number | boolean | null;
}

/** An adapter's entry: its name and kind, and a function that reads its stats now. */
export interface Inspectable {
  readonly name: string;
  readonly kind: string;
  stats(): Readonly<Record<string, string | number | boolean | null>>;
}

/** What `pool.stats()` returns. */
export interface PoolStats {
  /**
   * Resources that exist or are being created: `available` + `borrowed` + `destroying` + those
   * being created or checked. Never above `max`.
   */
  readonly size: number;
  /** Idle resources, ready to hand out. */
  readonly available: number;
  /** Resources held by leases (including those being `reset` after release). */
  readonly borrowed: number;
  /** Acquires waiting for a resource. */
  readonly pending: number;
  /**
   * Resources whose `destroy` has not finished yet. They still count against `max`: the server
   * still has them (a connection killed mid-query lives until the server notices).
   */
  readonly destroying: number;
  readonly min: number;
  readonly max: number;
}

const shown = new Set<Inspectable>();
const pools = new Set<{ readonly name: string; stats(): PoolStats }>();

/** Lists a pool in inspect() until the returned function is called (the pool closed). */
export function showPool(pool: { readonly name: string; stats(): PoolStats }): () => void {
  pools.add(pool);
  return () => void pools.delete(pool);
}

/** Shows `entry` in inspect() until the returned function is called (the adapter closed). */
export function showInInspect(entry: Inspectable): () => void {
  shown.add(entry);
  return () => void shown.delete(entry);
}

/** What `inspect()` returns. */
export interface Snapshot {
  readonly takenAt: string;
  /** `open` counts every open scope; `oldest` lists the `maxScopes` oldest; `omitted` is how many were not listed. */
  readonly scopes: { readonly open: number; readonly oldest: readonly ScopeSnapshot[]; readonly omitted: number };
  /**
   * `outstanding` counts every held lease and `unscoped` those held by no scope; `bySite` groups
   * the `maxLeases` oldest of them; `omitted` is how many younger ones were not grouped.
   */
  readonly leases: {
    readonly outstanding: number;
    readonly unscoped: number;
    readonly bySite: readonly SiteSnapshot[];
    readonly omitted: number;
  };
  /** Pools created and not yet closed, in creation order. */
  readonly pools: readonly PoolSnapshot[];
  /** What adapters show (custodian/redis's shared client, ...), in creation order. */
  readonly adapters: readonly AdapterSnapshot[];
  readonly suspects: readonly GrowthSuspect[];
}

/** Options of `inspect()`. */
export interface InspectOptions {
  /** At most this many scopes are listed (the oldest). Default 100. */
  maxScopes?: number;
  /**
   * At most this many leases (the oldest) are grouped by site; formatting a site costs about 10 µs
   * the first time, so this bounds how long inspect() can take. Default 10000.
   */
  maxLeases?: number;
}

/**
 * Returns a snapshot of open scopes (oldest first), outstanding leases grouped by site (largest
 * group first), growth suspects and the stats of every open pool. Bounded: it lists at most
 * `maxScopes` scopes and groups at most `maxLeases` leases, whatever is open, and says how many it
 * left out; the counts are always exact.
 */
export function inspect(options: InspectOptions = {}): Snapshot {
  validateOptions('inspect()', options, optionRules);
  const maxScopes = options.maxScopes ?? 100;
  const maxLeases = options.maxLeases ?? 10_000;
  const now = performance.now();
  const oldest: ScopeSnapshot[] = [];
  // The chain is in open order, so the oldest come first: no sort, and no walk past maxScopes.
  for (let s = scopes.head; s !== undefined && oldest.length < maxScopes; s = s.newer as typeof s) {
    const scope = s;
    let held = 0;
    for (const _ of leasesOf(scope)) held++;
    oldest.push({
      id: scope.id,
      name: scope.name,
      parentId: scope.parent?.id,
      state: scope.state,
      site: scope.site,
      ageMs: now - scope.t0,
      leases: held,
      stale: scope.reportedStale,
    });
  }
  const sites = new Map<string, { kind: string; site: string | undefined; count: number; unscoped: number; oldestMs: number }>();
  let grouped = 0;
  for (let lease = leases.head; lease !== undefined && grouped < maxLeases; lease = lease.newer as typeof lease) {
    grouped++;
    const site = formatSite(lease.raw);
    const key = `${lease.kind}\0${site ?? ''}`;
    const heldMs = now - lease.t0;
    const isUnscoped = lease.unscoped();
    const entry = sites.get(key);
    if (entry === undefined) sites.set(key, { kind: lease.kind, site, count: 1, unscoped: isUnscoped ? 1 : 0, oldestMs: heldMs });
    else {
      entry.count++;
      if (isUnscoped) entry.unscoped++;
      entry.oldestMs = Math.max(entry.oldestMs, heldMs);
    }
  }
  return {
    takenAt: new Date().toISOString(),
    scopes: { open: scopes.size, oldest, omitted: scopes.size - oldest.length },
    leases: {
      outstanding: leases.size,
      unscoped: unscopedLeases(),
      bySite: [...sites.values()].sort((a, b) => b.count - a.count),
      omitted: leases.size - grouped,
    },
    suspects: growth.suspects(settings.growthSamples),
    pools: [...pools].map((pool) => ({ name: pool.name, ...pool.stats() })),
    adapters: [...shown].map((entry) => ({ ...entry.stats(), name: entry.name, kind: entry.kind })),
  };
}
