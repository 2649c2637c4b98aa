/**
 * From samples to a verdict. Each series is fitted three times with Theil–Sen (robust: one odd
 * reading moves it little) and Sen's 95 % interval: over the whole run, over the early part and
 * over the last decade of iterations (from a tenth of the total to the end). A leak keeps its rate
 * from decade to decade; a cache that warms up grows early and then stops, or grows ever slower.
 *
 *  - stable:  no fit shows growth (its interval includes 0, or it is below the floor);
 *  - bounded: it grew, but the last decade does not, or grows at less than a third of the early rate;
 *  - leaking: the last decade grows, above the floor, at a third or more of the early rate.
 */
import { median, theilSen, type Fit } from '../../src/internal.js';

/** What a soak concludes about a series. */
export type Verdict = 'stable' | 'bounded' | 'leaking';

/** The least growth taken for growth: both must be exceeded. */
export interface Floor {
  /** Bytes per iteration. */
  readonly bytesPerIteration: number;
  /** Bytes over the fitted stretch (the reading noise of the series). */
  readonly bytes: number;
}

/** How one series was judged. */
export interface Judgement {
  readonly verdict: Verdict;
  /** Why, in one sentence. */
  readonly reason: string;
  /** Over every sample. */
  readonly whole: Fit;
  /** Over the samples up to where the last decade starts. */
  readonly early: Fit;
  /** Over the last decade: the rate that decides. */
  readonly late: Fit;
  /** Where the last decade starts (an iteration count). */
  readonly lateFrom: number;
}

/** A rate shrinking by more than this, early to late, is a cache warming up, not a leak. */
export const SHRINK = 3;

/**
 * Whether a stretch of samples grew: the fit's interval excludes 0, its slope reaches the floor, and
 * both the fitted rise and the rise actually read (the median of its last two readings over that of
 * its first two) reach the noise floor; the last guards against a slope that a few close, noisy
 * early readings made steep.
 */
function grows(xs: readonly number[], ys: readonly number[], fit: Fit, floor: Floor): boolean {
  const n = xs.length;
  if (n < 3 || fit.low <= 0 || fit.slope < floor.bytesPerIteration) return false;
  const span = (xs[n - 1] as number) - (xs[0] as number);
  const read = median(ys.slice(n - 2)) - median(ys.slice(0, 2));
  return fit.slope * span >= floor.bytes && read >= floor.bytes;
}

/** Judges a series of readings `ys` taken after `xs` iterations (ascending, the first usually 0); `per` names an iteration in the reason. */
export function judge(xs: readonly number[], ys: readonly number[], floor: Floor, per = 'iteration'): Judgement {
  const rate = (bytes: number): string => `${bytes >= 10 || bytes <= -10 ? bytes.toFixed(0) : bytes.toFixed(1)} B/${per}`;
  const n = xs.length;
  const last = xs[n - 1] ?? 0;
  // The last decade, when it holds 3 samples; else the later half.
  let start = xs.findIndex((x) => x >= last / 10);
  if (start < 0 || n - start < 3) start = Math.max(0, Math.floor(n / 2) - (n % 2 === 0 ? 1 : 0));
  const lateFrom = xs[start] ?? 0;
  const stretch = (from: number, to: number) => {
    const sx = xs.slice(from, to);
    const sy = ys.slice(from, to);
    const fit = theilSen(sx, sy);
    return { fit, grew: grows(sx, sy, fit, floor) };
  };
  const { fit: whole, grew: grewWhole } = stretch(0, n);
  const { fit: early, grew: grewEarly } = stretch(0, start + 1);
  const { fit: late, grew: grewLate } = stretch(start, n);
  const base = { whole, early, late, lateFrom };
  if (!grewLate && !grewEarly && !grewWhole) {
    return { ...base, verdict: 'stable', reason: `no growth: ${rate(whole.slope)} over the run, within noise` };
  }
  if (!grewLate) {
    return {
      ...base,
      verdict: 'bounded',
      reason: `grew early (${rate(grewEarly ? early.slope : whole.slope)}), then stopped: ${rate(late.slope)} from ${per} ${lateFrom}`,
    };
  }
  if (grewEarly && late.slope * SHRINK < early.slope) {
    return {
      ...base,
      verdict: 'bounded',
      reason: `growth is slowing down: ${rate(early.slope)} early, ${rate(late.slope)} from ${per} ${lateFrom}; a run 10x longer tells a slow leak from a cache still filling`,
    };
  }
  return { ...base, verdict: 'leaking', reason: `grows ${rate(late.slope)} from ${per} ${lateFrom} on, and does not slow down` };
}

/**
 * Geometric checkpoints ending at `iterations`, spanning two decades (from iterations/100), so
 * that the last decade holds about half of them; deduplicated when `iterations` is small.
 */
export function geometricCheckpoints(iterations: number, count: number): number[] {
  const out = new Set<number>();
  if (count <= 1) return [iterations];
  const from = Math.max(1, iterations / 100);
  const ratio = (iterations / from) ** (1 / (count - 1));
  for (let i = 0; i < count; i++) out.add(Math.min(iterations, Math.max(1, Math.round(from * ratio ** i))));
  out.add(iterations);
  return [...out].sort((a, b) => a - b);
}
