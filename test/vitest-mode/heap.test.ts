/**
 * expectNoHeapGrowth(): the heap after full GC, sampled while a function runs many times, must not
 * grow with the number of calls (fitted over the second half of the samples, so a cache that
 * fills early passes). Runs with --expose-gc (vitest.config.ts).
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks, expectNoHeapGrowth, HeapGrowthError, type HeapGrowth } from '../../adapters/vitest/index.js';
import { track, type Lease } from '../../src/index.js';
import { rejectionOf, sitesIn, useCleanCustodian } from '../helpers.js';

useCleanCustodian();

const siteOf = sitesIn(import.meta.url);

/** About 1 KB of heap: a packed array of 120 small integers (8 bytes each, plus headers). */
const kilobyte = () => new Array<number>(120).fill(0);

async function heapError(promise: Promise<HeapGrowth>): Promise<HeapGrowthError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(HeapGrowthError);
  return error as HeapGrowthError;
}

describe('a function that keeps nothing passes', () => {
  it('allocates on every call but keeps nothing: resolves with the samples taken (8 by default)', async () => {
    let calls = 0;
    const growth = await expectNoHeapGrowth(() => {
      calls++;
      return { scratch: kilobyte(), text: `call ${calls}` };
    });
    expect(growth.iterations).toBe(2000);
    expect(growth.samples).toHaveLength(8);
    expect(growth.samples[0]?.iteration).toBe(0);
    expect(growth.samples.at(-1)?.iteration).toBe(2000);
    expect(growth.samples.map((s) => s.iteration)).toEqual([...growth.samples.map((s) => s.iteration)].sort((a, b) => a - b));
    for (const sample of growth.samples) expect(sample.heapUsed).toBeGreaterThan(0);
    expect(growth.bytesPerIteration).toBeLessThanOrEqual(64);
    expect(growth.growingSites).toEqual([]);
    // Warmup (a tenth of the iterations by default) plus the measured calls.
    expect(calls).toBe(2200);
  });

  it('takes as many samples as asked, evenly spaced', async () => {
    let calls = 0;
    // With so few calls the noise of a few KB between samples is a lot per call: the limit is not the subject here.
    const growth = await expectNoHeapGrowth(() => void calls++, { iterations: 100, samples: 5, warmup: 0, maxBytesPerIteration: 1e6 });
    expect(growth.samples.map((s) => s.iteration)).toEqual([0, 25, 50, 75, 100]);
    expect(calls).toBe(100);
  });

  it('supports an async fn, awaiting each call before the next', async () => {
    let running = 0;
    let maxRunning = 0;
    const growth = await expectNoHeapGrowth(
      async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await Promise.resolve();
        const scratch = kilobyte();
        running--;
        return scratch;
      },
      { iterations: 1000 },
    );
    expect(growth.samples).toHaveLength(8);
    expect(maxRunning).toBe(1);
  });

  it('a bounded cache that fills during warmup passes', async () => {
    const cache = new Map<number, number[]>();
    let i = 0;
    const growth = await expectNoHeapGrowth(() => {
      const key = i++ % 100;
      let value = cache.get(key);
      if (value === undefined) cache.set(key, (value = kilobyte()));
      return value.length;
    });
    expect(cache.size).toBe(100);
    expect(growth.bytesPerIteration).toBeLessThanOrEqual(64);
  });
});

describe('a function that keeps something on every call fails', () => {
  it('keeps about 1 KB per call: HeapGrowthError with bytesPerIteration near 1 KB, and a message that says the limit', async () => {
    const kept: unknown[] = [];
    const error = await heapError(expectNoHeapGrowth(() => kept.push(kilobyte())));
    const { growth } = error;
    expect(growth.bytesPerIteration).toBeGreaterThan(500);
    expect(growth.bytesPerIteration).toBeLessThan(2000);
    expect(growth.samples).toHaveLength(8);
    expect(growth.growingSites).toEqual([]);
    expect(error.name).toBe('HeapGrowthError');
    expect(error.message).toMatch(
      /^The heap grew by \d+ B per call over 2000 calls \(after GC: [\d.]+ MB at the start, [\d.]+ MB at the end\); the limit is 64 B per call\./,
    );
    expect(error.message).toContain(`grew by ${Math.round(growth.bytesPerIteration)} B per call`);
    expect(error.message).toContain('No lease custodian knows of grew');
    kept.length = 0;
  });

  it('the limit is maxBytesPerIteration', async () => {
    const kept: unknown[] = [];
    const error = await heapError(expectNoHeapGrowth(() => kept.push(kilobyte()), { iterations: 1000, maxBytesPerIteration: 100 }));
    expect(error.message).toContain('the limit is 100 B per call');
    kept.length = 0;
    // A limit above what it keeps passes.
    const growth = await expectNoHeapGrowth(() => kept.push(kilobyte()), { iterations: 1000, maxBytesPerIteration: 100_000 });
    expect(growth.bytesPerIteration).toBeGreaterThan(500);
    kept.length = 0;
  });

  it('leaks unscoped custodian leases: the growing site is listed in growingSites and the message', async () => {
    allowLeaks();
    const held: Lease<{ id: number }>[] = [];
    let id = 0;
    const kind = 'heap test connection';
    try {
      const error = await heapError(
        expectNoHeapGrowth(() => {
          held.push(track({ id: id++ }, { release: () => {}, kind })); // site:growing
        }),
      );
      const site = siteOf('growing', 'track');
      expect(error.growth.growingSites).toEqual([{ kind, site, growth: 2000 }]);
      expect(error.message).toContain('Leases still held, by acquisition site, that grew during the calls:');
      expect(error.message).toContain(`  +2000  ${kind}  ${site}`);
    } finally {
      for (const lease of held) await lease.release();
    }
  });
});

describe('bad input throws a TypeError naming the option', () => {
  const cases: [string, unknown, RegExp][] = [
    ['iterations 0', { iterations: 0 }, /^expectNoHeapGrowth\(\): option 'iterations' must be a whole number above 0, got 0/],
    ['iterations 1.5', { iterations: 1.5 }, /^expectNoHeapGrowth\(\): option 'iterations'/],
    ['samples 3', { samples: 3 }, /^expectNoHeapGrowth\(\): option 'samples' must be a whole number from 4, got 3/],
    [
      'maxBytesPerIteration -1',
      { maxBytesPerIteration: -1 },
      /^expectNoHeapGrowth\(\): option 'maxBytesPerIteration' must be a number of bytes, 0 or more, got -1/,
    ],
    ['maxBytesPerIteration NaN', { maxBytesPerIteration: Number.NaN }, /^expectNoHeapGrowth\(\): option 'maxBytesPerIteration'/],
    ['warmup -1', { warmup: -1 }, /^expectNoHeapGrowth\(\): option 'warmup'/],
    [
      'an unknown option',
      { iteration: 10 },
      /^expectNoHeapGrowth\(\): unknown option 'iteration'; known options are iterations, warmup, maxBytesPerIteration, samples/,
    ],
    [
      'fewer iterations than samples - 1',
      { iterations: 3, samples: 8 },
      /^expectNoHeapGrowth\(\): option 'iterations' must be at least samples - 1 \(7\), got 3/,
    ],
    ['options not an object', 'fast', /^expectNoHeapGrowth\(\): options must be an object/],
  ];

  it.each(cases)('%s', async (_name, options, message) => {
    let called = false;
    const error = await rejectionOf(expectNoHeapGrowth(() => void (called = true), options as never));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(message);
    expect(called).toBe(false);
  });

  it('fn not a function', async () => {
    const error = await rejectionOf(expectNoHeapGrowth('fn' as never));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/^expectNoHeapGrowth\(\): fn must be a function, got string/);
  });
});
