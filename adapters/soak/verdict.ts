/**
 * From samples to a verdict. Each series is fitted three times with Theil–Sen (robust: one odd
 * reading moves it little) and Sen's 95 % interval: over the whole run, over the early part and
 * over the last decade of iterations (from a tenth of the total to the end). A leak keeps its rate
 * from decade to decade; a cache that warms up grows early and then stops, or grows ever slower.
 *
 *  - stable:  no fit shows growth (its interval includes 0, or it is below the floor), and the
 *             readings at the end are within the floor of those at the start;
 *  - bounded: it grew, but the last decade does not, or grows at less than a third of the early rate
 *    and still slows down within the decade;
 *  - leaking: the last decade grows, above the floor, at a third or more of the early rate, or at
 *    a steady rate within the decade (a cache that filled early, plus a leak).
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
  // (Checkpoints are whole numbers: iterations/10 may have been rounded down by up to a half.)
  let start = xs.findIndex((x) => x >= last / 10 - 0.5);
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
  // A rise that happened between the first few checkpoints leaves every fit flat: read it directly.
  const rise = median(ys.slice(n - 2)) - median(ys.slice(0, 2));
  const rose = rise >= floor.bytes && rise >= floor.bytesPerIteration * (last - (xs[0] ?? 0));
  if (!grewLate && !grewEarly && !grewWhole && !rose) {
    return { ...base, verdict: 'stable', reason: `no growth: ${rate(whole.slope)} over the run, within noise` };
  }
  if (!grewLate) {
    const how = grewEarly ? rate(early.slope) : grewWhole ? rate(whole.slope) : `${(rise / 1024).toFixed(0)} KiB in all`;
    return { ...base, verdict: 'bounded', reason: `grew early (${how}), then stopped: ${rate(late.slope)} from ${per} ${lateFrom}` };
  }
  if (grewEarly && late.slope * SHRINK < early.slope) {
    // Slower than at the start: a cache still filling, or a cache that filled plus a leak. Within
    // the last decade, the first keeps slowing down; the second is a straight line.
    const mid = start + Math.floor((n - 1 - start) / 2);
    const { fit: before } = stretch(start, mid + 1);
    const { fit: after, grew: steady } = stretch(mid, n);
    if (n - start >= 5 && steady && after.slope * 2 >= before.slope) {
      return {
        ...base,
        verdict: 'leaking',
        reason: `grows ${rate(late.slope)} from ${per} ${lateFrom} on at a steady rate, after a faster start (${rate(early.slope)}): something filled up, and something else keeps growing`,
      };
    }
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
