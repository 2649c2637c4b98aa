/**
 * Growth suspects: acquisition sites whose count of outstanding leases keeps rising.
 *
 * Each sample counts outstanding leases per site. A site whose count rose in every one of the last
 * `samples` samples is a suspect: a cache warming up rises and then stops, a leak keeps rising.
 * Pure bookkeeping, no timers, so it is tested directly.
 */

/** A site's outstanding count in one sample. */
export interface SiteCount {
  readonly kind: string;
  readonly site: string | undefined;
  count: number;
}

/** A site whose outstanding count rose in consecutive samples. */
export interface GrowthSuspect {
  readonly kind: string;
  readonly site: string | undefined;
  /** Outstanding leases acquired at this site, in the latest sample. */
  readonly count: number;
  /** In how many consecutive samples the count rose. */
  readonly growth: number;
}

interface History {
  kind: string;
  site: string | undefined;
  count: number;
  streak: number;
}

export class GrowthTracker {
  #history = new Map<string, History>();

  /**
   * Records one sample and returns the sites that just became suspects (their streak reached a
   * multiple of `samples`, so a site that keeps growing is reported again, not on every sample).
   */
  sample(counts: ReadonlyMap<string, SiteCount>, samples: number): GrowthSuspect[] {
    const next = new Map<string, History>();
    const fresh: GrowthSuspect[] = [];
    for (const [key, { kind, site, count }] of counts) {
      const before = this.#history.get(key);
      const streak = before !== undefined && count > before.count ? before.streak + 1 : 0;
      next.set(key, { kind, site, count, streak });
      if (streak > 0 && streak % samples === 0) fresh.push({ kind, site, count, growth: streak });
    }
    this.#history = next; // sites with no outstanding lease are forgotten
    return fresh;
  }

  /** Every site that is growing now (streak of at least `samples`), largest count first. */
  suspects(samples: number): GrowthSuspect[] {
    const out: GrowthSuspect[] = [];
    for (const h of this.#history.values()) {
      if (h.streak >= samples) out.push({ kind: h.kind, site: h.site, count: h.count, growth: h.streak });
    }
    return out.sort((a, b) => b.count - a.count);
  }

  clear(): void {
    this.#history.clear();
  }
}
