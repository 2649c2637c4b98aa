/**
 * soak() on tasks whose retained memory is known exactly: the verdict, the rate (within ±20 % of
 * the truth) and the growing allocation site (the fixture's own line). The tasks live in a plain
 * CommonJS file loaded with require(), so that V8 runs that very file and its lines are the sites.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { currentScope, openScope, track, type Lease } from '../../src/index.js';
import { soak, type SoakResult } from '../../adapters/soak/index.js';

const require = createRequire(import.meta.url);
const tasks = require('./fixtures/tasks.cjs') as {
  makeLeak(bytes: number): () => void;
  makeCache(entries?: number): () => void;
  noop(): number;
  churn(): number;
  clear(): void;
};

const FIXTURE = 'test/soak/fixtures/tasks.cjs';
/** `file:line:column` of the function on the line after `marker`, as V8 names it: where its parameter list opens. */
function siteOf(marker: string): string {
  const lines = readFileSync(new URL('./fixtures/tasks.cjs', import.meta.url), 'utf8').split('\n');
  const index = lines.findIndex((l) => l.includes(marker)) + 1;
  return `${FIXTURE}:${index + 1}:${(lines[index] as string).indexOf('(') + 1}`;
}

const heapRate = (r: SoakResult): number => r.series.find((s) => s.name === 'heapUsed')?.late?.bytesPerIteration ?? NaN;

describe('soak(): the verdict on tasks that retain a known amount', () => {
  it('a task that retains nothing is stable', async () => {
    const r = await soak(tasks.noop, { iterations: 20_000 });
    expect(r.verdict, r.reason).toBe('stable');
    expect(Math.abs(heapRate(r))).toBeLessThan(16);
    expect(r.sites.filter((s) => s.site.startsWith(FIXTURE))).toEqual([]);
  });

  for (const bytes of [64, 1024]) {
    it(`a task that retains ${bytes} B per call is leaking at ${bytes} B/iteration (±20 %), and keep() is the top growing site`, async () => {
      try {
        const r = await soak(tasks.makeLeak(bytes), { iterations: 20_000 });
        expect(r.verdict, r.reason).toBe('leaking');
        expect(r.decidedBy).toBe('heapUsed');
        expect(r.rate.bytesPerIteration).toBeGreaterThan(bytes * 0.8);
        expect(r.rate.bytesPerIteration).toBeLessThan(bytes * 1.2);
        expect(r.rate.low).toBeLessThanOrEqual(r.rate.bytesPerIteration);
        expect(r.rate.high).toBeGreaterThanOrEqual(r.rate.bytesPerIteration);
        const top = r.sites[0];
        expect(top?.site).toBe(siteOf('// LEAK SITE'));
        expect(top?.functionName).toBe('keep');
        expect(top?.growthTimes).toBeGreaterThanOrEqual(r.samples.length - 3);
        // The profiler's estimate of the retained bytes, within sampling error.
        expect(top?.bytesPerIteration).toBeGreaterThan(bytes * 0.6);
        expect(top?.bytesPerIteration).toBeLessThan(bytes * 1.4);
      } finally {
        tasks.clear();
      }
    });
  }

  it('a 10,000-entry cache is bounded: it grows while it fills, then stops', async () => {
    const r = await soak(tasks.makeCache(10_000), { iterations: 100_000 });
    expect(r.verdict, r.reason).toBe('bounded');
    const heap = r.series.find((s) => s.name === 'heapUsed');
    expect(heap?.early?.bytesPerIteration).toBeGreaterThan(800); // 1 KiB entries while filling
    expect(Math.abs(heap?.late?.bytesPerIteration ?? NaN)).toBeLessThan(16);
    expect(r.sites[0]?.site).toBe(siteOf('// CACHE ENTRY'));
  });

  it('a task that allocates and frees a lot (JSON round trips, 10 KiB buffers) is stable', async () => {
    const r = await soak(tasks.churn, { iterations: 20_000 });
    expect(r.verdict, r.reason).toBe('stable');
    expect(r.series.find((s) => s.name === 'external')?.verdict).toBe('stable');
  });
});

describe('soak(): the run', () => {
  it('samples at geometric checkpoints ending at iterations, after the warm-up, every series after GC', async () => {
    const seen: number[] = [];
    const r = await soak(tasks.noop, { iterations: 1000, warmup: 7, profile: false, onSample: (s) => seen.push(s.iteration) });
    expect(r.samples.map((s) => s.iteration)).toEqual([0, 10, 16, 25, 40, 63, 100, 158, 251, 398, 631, 1000]);
    expect(seen).toEqual(r.samples.map((s) => s.iteration));
    expect(r.warmup).toBe(7);
    for (const s of r.samples) {
      expect(s.bytes.heapUsed).toBeGreaterThan(0);
      expect(s.bytes.rss).toBeGreaterThan(s.bytes.heapUsed as number);
    }
    expect(r.profiler).toEqual({ enabled: false, samplingInterval: 4096, note: 'off (profile: false)' });
  });

  it('reads PSS and USS from /proc/self/smaps_rollup, or says that it could not', async () => {
    const r = await soak(tasks.noop, { iterations: 100, checkpoints: 3, profile: false });
    const pss = r.series.find((s) => s.name === 'pss');
    if (process.platform === 'linux') {
      expect(pss?.available).toBe(true);
      const last = r.samples[r.samples.length - 1]?.bytes;
      expect(last?.uss).toBeLessThanOrEqual(last?.pss as number);
      expect(last?.pss).toBeLessThanOrEqual(last?.rss as number);
    } else {
      expect(pss?.available).toBe(false);
      expect(r.notes.join('\n')).toMatch(/smaps_rollup cannot be read/);
    }
  });

  it('runs each task in its own scope, `concurrency` at a time, iterations numbered from 0 (warm-up negative)', async () => {
    let inFlight = 0;
    let most = 0;
    const scopes = new Set<unknown>();
    const iterations: number[] = [];
    await soak(
      async (i, scope) => {
        expect(currentScope()).toBe(scope);
        scopes.add(scope);
        iterations.push(i);
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setImmediate(resolve));
        inFlight--;
      },
      { iterations: 200, warmup: 10, concurrency: 8, checkpoints: 3, profile: false },
    );
    expect(most).toBe(8);
    expect(scopes.size).toBe(210);
    expect([...iterations].sort((a, b) => a - b)).toEqual(Array.from({ length: 210 }, (_, k) => k - 10));
  });

  it('returns plain data: JSON keeps all of it', async () => {
    const r = await soak(tasks.makeLeak(1024), { iterations: 2000 });
    tasks.clear();
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('lists custodian lease sites whose outstanding count grew', async () => {
    const keeper = openScope({ name: 'keeper' });
    const held: Lease<number>[] = [];
    try {
      const r = await soak(
        (i) => {
          if (i >= 0 && i % 10 === 0) keeper.run(() => held.push(track(i, { release: () => undefined, kind: 'ticket' })));
        },
        { iterations: 2000, profile: false },
      );
      expect(r.leaseSites).toHaveLength(1);
      expect(r.leaseSites[0]).toMatchObject({ kind: 'ticket', growth: 200, outstanding: 200 });
      expect(r.leaseSites[0]?.site).toMatch(/test\/soak\/soak\.test\.ts:\d+:\d+/);
    } finally {
      for (const lease of held) await lease.release();
      await keeper.close();
    }
  });

  it('rejects with the iteration when the task throws', async () => {
    await expect(
      soak(
        (i) => {
          if (i === 42) throw new Error('boom');
        },
        { iterations: 100, warmup: 0, profile: false },
      ),
    ).rejects.toThrow('soak(): the task threw on iteration 42: boom');
  });

  it('stops every worker when one task throws, with concurrency', async () => {
    let calls = 0;
    await expect(
      soak(
        async (i) => {
          calls++;
          await new Promise((resolve) => setImmediate(resolve));
          if (i === 20) throw new Error('boom');
        },
        { iterations: 1000, warmup: 0, concurrency: 4, profile: false },
      ),
    ).rejects.toThrow('soak(): the task threw on iteration 20: boom');
    const atRejection = calls;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toBe(atRejection);
    expect(calls).toBeLessThan(30);
  });

  it('rejects bad options with a TypeError naming the option, before running anything', async () => {
    let ran = 0;
    const task = () => void ran++;
    await expect(soak(task, { iterations: 0 })).rejects.toThrow("soak(): option 'iterations' must be a whole number above 0, got 0");
    await expect(soak(task, { concurrency: 1.5 })).rejects.toThrow(/option 'concurrency'/);
    await expect(soak(task, { checkpoints: [10, 5, 20] })).rejects.toThrow(/option 'checkpoints' must be a whole number from 3/);
    await expect(soak(task, { iterations: 10, checkpoints: [1, 2, 50] })).rejects.toThrow(/must end at or before iterations \(10\)/);
    await expect(soak(task, { iterations: 10, itrations: 5 } as never)).rejects.toThrow(/unknown option 'itrations'/);
    await expect(soak('task' as never)).rejects.toThrow(TypeError);
    expect(ran).toBe(0);
  });
});
