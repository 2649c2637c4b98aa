/**
 * The Theil–Sen fit behind heap-growth verdicts: the median of pairwise slopes, Sen's 95 %
 * interval (checked against scipy.stats.theilslopes on the same points), and robustness to an
 * outlier that would drag a least-squares line.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { median, theilSen } from '../../src/measure/fit.js';

describe('theilSen()', () => {
  it('matches scipy.stats.theilslopes: slope, intercept and the 95 % interval', () => {
    const fit = theilSen([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [2.1, 3.9, 6.2, 8.0, 9.7, 12.5, 14.1, 15.8, 18.3, 19.9]);
    // scipy: (1.9999999999999998, 0.10000000000000142, 1.933333333333333, 2.0571428571428574)
    expect(fit.slope).toBeCloseTo(2, 12);
    expect(fit.intercept).toBeCloseTo(0.1, 12);
    expect(fit.low).toBeCloseTo(1.933333333333333, 12);
    expect(fit.high).toBeCloseTo(2.0571428571428574, 12);
    expect(fit.points).toBe(10);
  });

  it('is not moved by one wild reading', () => {
    const xs = [0, 1, 2, 3, 4, 5, 6, 7];
    const ys = xs.map((x) => 100 + 64 * x);
    ys[3] = 50_000; // a reading taken while something else had allocated
    expect(theilSen(xs, ys).slope).toBe(64);
  });

  it('recovers the slope of any exact line, with an interval that holds it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1000, max: 1000 }),
        fc.integer({ min: -1e6, max: 1e6 }),
        fc.integer({ min: 3, max: 12 }),
        (slope, intercept, n) => {
          const xs = Array.from({ length: n }, (_, i) => i * 1000);
          const fit = theilSen(
            xs,
            xs.map((x) => intercept + slope * x),
          );
          expect(fit.slope).toBeCloseTo(slope, 6);
          expect(fit.low).toBeLessThanOrEqual(fit.slope);
          expect(fit.high).toBeGreaterThanOrEqual(fit.slope);
        },
      ),
    );
  });

  it('has slope 0 for a single point or points with one x', () => {
    expect(theilSen([5], [3])).toMatchObject({ slope: 0, intercept: 3 });
    expect(theilSen([5, 5], [3, 9])).toMatchObject({ slope: 0 });
  });
});

describe('median()', () => {
  it('of odd and even counts, and of none', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBe(0);
  });
});
