/**
 * A robust slope through noisy samples: Theil–Sen (the median of the slopes between every pair of
 * points), with a 95 % confidence interval (Sen 1968: ranks of the pairwise slopes around the
 * median, from the variance of Kendall's S). One outlying reading moves it little; heap readings
 * after GC have those.
 */

/** A fitted line: `slope` per unit of x, the 95 % interval around it, and the line's value at x = 0. */
export interface Fit {
  readonly slope: number;
  readonly low: number;
  readonly high: number;
  readonly intercept: number;
  /** How many points it was fitted on. */
  readonly points: number;
}

const Z95 = 1.959963984540054;

/** The Theil–Sen fit of `ys` over `xs` (same length; points with equal x pair with nothing). */
export function theilSen(xs: readonly number[], ys: readonly number[]): Fit {
  const n = Math.min(xs.length, ys.length);
  const slopes: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = (xs[j] as number) - (xs[i] as number);
      if (dx !== 0) slopes.push(((ys[j] as number) - (ys[i] as number)) / dx);
    }
  }
  if (slopes.length === 0) return { slope: 0, low: 0, high: 0, intercept: n > 0 ? median(ys.slice(0, n)) : 0, points: n };
  slopes.sort((a, b) => a - b);
  const slope = medianSorted(slopes);
  // Sen's interval: the slopes ranked (N - C)/2 and (N + C)/2 + 1 (1-based), C = z * sqrt(var S),
  // rounded as scipy.stats.theilslopes does.
  const N = slopes.length;
  const varS = (n * (n - 1) * (2 * n + 5)) / 18;
  const c = Z95 * Math.sqrt(varS);
  const lowRank = Math.max(0, Math.round((N - c) / 2) - 1);
  const highRank = Math.min(N - 1, Math.round((N + c) / 2));
  // The line through the medians, as scipy does.
  const intercept = median(ys.slice(0, n)) - slope * median(xs.slice(0, n));
  return { slope, low: slopes[lowRank] as number, high: slopes[highRank] as number, intercept, points: n };
}

/** The median of `values`. */
export function median(values: readonly number[]): number {
  return medianSorted([...values].sort((a, b) => a - b));
}

function medianSorted(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  if (sorted.length === 0) return 0;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
