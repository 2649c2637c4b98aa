/**
 * Samples to series reports and one verdict, shared by the function soak and the server soak.
 */
import { theilSen, type Fit } from '../../src/internal.js';
import {
  SERIES,
  type GrowingSite,
  type LeaseGrowthSite,
  type Rate,
  type SeriesName,
  type SeriesReport,
  type SoakSample,
} from './result.js';
import { NO_USER_FRAME, type SiteBytes } from './profile.js';
import { judge, type Floor, type Verdict } from './verdict.js';

const KiB = 1024;

/**
 * The noise of each series after a full GC, measured on this project's CI machine with tasks that
 * retain nothing: the heap moves by tens of KiB between readings, the kernel's counts by pages and
 * by what the allocator keeps, hence the larger floors.
 */
export function floorOf(name: SeriesName, bytesPerIteration: number): Floor {
  const bytes = name === 'heapUsed' || name === 'external' || name === 'arrayBuffers' ? 256 * KiB : 2048 * KiB;
  return { bytesPerIteration, bytes };
}

const toRate = (fit: Fit): Rate => ({ bytesPerIteration: fit.slope, low: fit.low, high: fit.high, intercept: fit.intercept });
const RANK: Record<Verdict, number> = { stable: 0, bounded: 1, leaking: 2 };

/** The overall conclusion of a soak. */
export interface Conclusion {
  readonly series: SeriesReport[];
  readonly verdict: Verdict;
  readonly decidedBy: SeriesName;
  readonly rate: Rate;
  readonly reason: string;
}

/**
 * Fits and judges every series; the verdict is the worst among `decisive` (the first of them
 * breaks ties, so that the headline is the heap's when nothing grows).
 */
export function conclude(
  samples: readonly SoakSample[],
  decisive: readonly SeriesName[],
  unavailable: ReadonlyMap<SeriesName, string>,
  bytesPerIteration: number,
  per = 'iteration',
): Conclusion {
  const xs = samples.map((s) => s.iteration);
  const series: SeriesReport[] = [];
  for (const name of SERIES) {
    const ys = samples.map((s) => s.bytes[name]);
    const missing = unavailable.get(name);
    if (missing !== undefined || ys.some((y) => y === null)) {
      series.push({
        name,
        available: false,
        verdict: null,
        reason: missing ?? 'not read at every checkpoint',
        whole: null,
        early: null,
        late: null,
        lateFrom: null,
        decisive: false,
      });
      continue;
    }
    const j = judge(xs, ys as number[], floorOf(name, bytesPerIteration), per);
    series.push({
      name,
      available: true,
      verdict: j.verdict,
      reason: j.reason,
      whole: toRate(j.whole),
      early: toRate(j.early),
      late: toRate(j.late),
      lateFrom: j.lateFrom,
      decisive: decisive.includes(name),
    });
  }
  let decider: SeriesReport | undefined;
  for (const name of decisive) {
    const s = series.find((r) => r.name === name && r.available);
    if (s !== undefined && (decider === undefined || RANK[s.verdict as Verdict] > RANK[decider.verdict as Verdict])) decider = s;
  }
  if (decider === undefined)
    throw new Error(`none of the series ${decisive.join(', ')} could be read: ${[...unavailable.values()].join('; ')}`);
  return {
    series,
    verdict: decider.verdict as Verdict,
    decidedBy: decider.name,
    rate: decider.late as Rate,
    reason: `${decider.name} ${decider.reason}`,
  };
}

/**
 * Sites whose sampled retained bytes grew between at least half of the consecutive checkpoints
 * and, overall, by more than the heap's noise floor (four times that for allocations with no user
 * frame, so that what V8 and Node keep for themselves while warming up is not listed), most growth
 * first.
 */
export function growingSites(xs: readonly number[], live: readonly SiteBytes[], minGrowth: number): GrowingSite[] {
  const names = new Map<string, string>();
  for (const checkpoint of live) for (const [site, { functionName }] of checkpoint) names.set(site, functionName);
  const out: GrowingSite[] = [];
  const steps = live.length - 1;
  for (const [site, functionName] of names) {
    const retained = live.map((checkpoint) => Math.round(checkpoint.get(site)?.bytes ?? 0));
    let growthTimes = 0;
    for (let i = 1; i < retained.length; i++) if ((retained[i] as number) > (retained[i - 1] as number)) growthTimes++;
    const retainedGrowth = (retained[retained.length - 1] ?? 0) - (retained[0] ?? 0);
    // What Node and V8 allocate for themselves (no user frame) grows a few hundred KiB while they warm up.
    const floor = site === NO_USER_FRAME ? 4 * minGrowth : minGrowth;
    if (steps < 1 || growthTimes * 2 < steps || retainedGrowth < floor) continue;
    const bytesPerIteration = theilSen(xs, retained).slope;
    out.push({ site, functionName, growthTimes, retainedGrowth, bytesPerIteration, retained });
  }
  return out.sort((a, b) => b.retainedGrowth - a.retainedGrowth);
}

/** Outstanding custodian leases by site at one checkpoint. */
export type LeaseCounts = Map<string, { readonly kind: string; readonly site: string | undefined; readonly count: number }>;

/** Lease acquisition sites whose outstanding count is higher at the end than at the start, most growth first. */
export function growingLeaseSites(counts: readonly LeaseCounts[]): LeaseGrowthSite[] {
  const keys = new Map<string, { kind: string; site: string | undefined }>();
  for (const checkpoint of counts) for (const [key, { kind, site }] of checkpoint) keys.set(key, { kind, site });
  const out: LeaseGrowthSite[] = [];
  for (const [key, { kind, site }] of keys) {
    const series = counts.map((c) => c.get(key)?.count ?? 0);
    let growthTimes = 0;
    for (let i = 1; i < series.length; i++) if ((series[i] as number) > (series[i - 1] as number)) growthTimes++;
    const outstanding = series[series.length - 1] ?? 0;
    const growth = outstanding - (series[0] ?? 0);
    if (growth > 0) out.push({ kind, site: site ?? null, growthTimes, growth, outstanding });
  }
  return out.sort((a, b) => b.growth - a.growth);
}
