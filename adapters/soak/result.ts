/**
 * The result of a soak: plain data (numbers, strings, arrays, `null` for what was not measured), so
 * that `JSON.stringify` keeps all of it and the CLI, the tests and a CI job read the same thing.
 */
import type { Verdict } from './verdict.js';

/** The series a soak samples. heapUsed, external and arrayBuffers are V8's, after a full GC; the others are the kernel's. */
export type SeriesName = 'heapUsed' | 'external' | 'arrayBuffers' | 'rss' | 'pss' | 'uss';

/** Every series, in the order tables show them. */
export const SERIES: readonly SeriesName[] = ['heapUsed', 'external', 'arrayBuffers', 'rss', 'pss', 'uss'];

/** One checkpoint: after how many measured iterations, and every series in bytes (`null`: not available). */
export interface SoakSample {
  readonly iteration: number;
  /** Milliseconds since the measured iterations began. */
  readonly elapsedMs: number;
  readonly bytes: Readonly<Record<SeriesName, number | null>>;
}

/** A fitted rate: bytes per iteration with its 95 % confidence interval. */
export interface Rate {
  readonly bytesPerIteration: number;
  readonly low: number;
  readonly high: number;
  /** The fitted line's value at iteration 0, in bytes (to draw it). */
  readonly intercept: number;
}

/** How one series grew. */
export interface SeriesReport {
  readonly name: SeriesName;
  /** `false` when the series could not be read (then `reason` says why, and no fit is given). */
  readonly available: boolean;
  readonly verdict: Verdict | null;
  readonly reason: string;
  /** Over the whole run. */
  readonly whole: Rate | null;
  /** Up to where the last decade starts. */
  readonly early: Rate | null;
  /** Over the last decade: the rate that decides. */
  readonly late: Rate | null;
  /** The iteration the last decade starts at. */
  readonly lateFrom: number | null;
  /** Whether this series decides the overall verdict (the heap's and Buffers' in a function soak; USS, else RSS, for a server). */
  readonly decisive: boolean;
}

/** A function whose live sampled allocations kept growing across checkpoints. */
export interface GrowingSite {
  /** `file:line:column` of the function that allocated (the innermost frame in user code). */
  readonly site: string;
  readonly functionName: string;
  /** Between how many consecutive checkpoints its retained size grew. */
  readonly growthTimes: number;
  /** Retained bytes (sampled estimate) at the last checkpoint minus at the first. */
  readonly retainedGrowth: number;
  /** Theil–Sen slope of its retained bytes over iterations. */
  readonly bytesPerIteration: number;
  /** Its retained bytes at each checkpoint. */
  readonly retained: readonly number[];
}

/** An acquisition site of custodian leases whose outstanding count grew. */
export interface LeaseGrowthSite {
  readonly kind: string;
  readonly site: string | null;
  readonly growthTimes: number;
  /** Outstanding leases at the last checkpoint minus at the first. */
  readonly growth: number;
  readonly outstanding: number;
}

/** What a soak measured and concluded. */
export interface SoakResult {
  /** What was soaked: a function, or a server at a URL. */
  readonly target:
    { readonly kind: 'function'; readonly name: string } | { readonly kind: 'url'; readonly url: string; readonly pid: number };
  readonly iterations: number;
  readonly warmup: number;
  readonly concurrency: number;
  readonly durationMs: number;
  readonly node: string;
  /** The first sample is taken after the warm-up, at iteration 0. */
  readonly samples: readonly SoakSample[];
  readonly series: readonly SeriesReport[];
  /** The worst verdict among the decisive series. */
  readonly verdict: Verdict;
  /** The series the verdict and the headline rate come from. */
  readonly decidedBy: SeriesName;
  /** The headline: that series' rate over the last decade. */
  readonly rate: Rate;
  readonly reason: string;
  /** Growing allocation sites, most retained growth first (empty when profiling was off or unavailable). */
  readonly sites: readonly GrowingSite[];
  readonly profiler: { readonly enabled: boolean; readonly samplingInterval: number; readonly note: string | null };
  /** custodian lease sites whose outstanding count grew. */
  readonly leaseSites: readonly LeaseGrowthSite[];
  /** Lines worth reading: series not available, failed requests, ... */
  readonly notes: readonly string[];
}
