/**
 * soak(): runs a task many times, each in its own scope, and measures whether memory grows with
 * the number of runs — by how much per run, how sure that is, and which function holds on to it.
 */
import { inspect, withScope, type Scope } from '../../src/index.js';
import { isPromiseLike, memoryAfterGc, rules, validateOptions, type Rule } from '../../src/internal.js';
import { conclude, floorOf, growingLeaseSites, growingSites, type LeaseCounts } from './analyse.js';
import { AllocationSampler, withoutInlining, type SiteBytes } from './profile.js';
import type { SeriesName, SoakResult, SoakSample } from './result.js';
import { readResident } from './smaps.js';
import { geometricCheckpoints } from './verdict.js';

/** Options of soak(). */
export interface SoakOptions {
  /** Measured runs of the task. Default 10,000. */
  iterations?: number | undefined;
  /** Runs before measuring (lazy initialisation, the JIT), not measured. Default a tenth of `iterations`, at most 1,000. */
  warmup?: number | undefined;
  /** Runs in flight at once. Default 1. */
  concurrency?: number | undefined;
  /**
   * Where to sample: a count of geometric checkpoints ending at `iterations` (from iterations/100;
   * default 11, so that iterations/10 is one of them), or ascending iteration counts.
   */
  checkpoints?: number | readonly number[] | undefined;
  /** Growth per iteration below which a series counts as flat, in bytes. Default 1. */
  threshold?: number | undefined;
  /** Record allocation sites with V8's sampling heap profiler. Default true. */
  profile?: boolean | undefined;
  /** Mean bytes between two sampled allocations. Default 4096 (smaller: finer and slower). */
  samplingInterval?: number | undefined;
  /** Called with every sample as it is taken. */
  onSample?: ((sample: SoakSample, index: number, total: number) => void) | undefined;
  /** Called now and then (about 200 times a run) with the runs done, warm-up included, and the total. */
  onProgress?: ((done: number, total: number) => void) | undefined;
  /** A name for the result (default the function's name). */
  name?: string | undefined;
}

/** The task: called with the iteration (0-based, warm-up runs negative) and its scope. */
export type SoakTask = (iteration: number, scope: Scope) => unknown;

const optionRules: Record<keyof SoakOptions, Rule> = {
  iterations: rules.positiveInt,
  warmup: rules.count,
  concurrency: rules.positiveInt,
  checkpoints: (value) =>
    (typeof value === 'number' && Number.isInteger(value) && value >= 3) ||
    (Array.isArray(value) && value.length >= 3 && value.every((v, i) => Number.isInteger(v) && v > 0 && (i === 0 || v > value[i - 1])))
      ? undefined
      : 'a whole number from 3, or 3 or more ascending whole numbers above 0',
  threshold: (value) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? undefined : 'a number of bytes, 0 or more'),
  profile: (value) => (typeof value === 'boolean' ? undefined : 'true or false'),
  samplingInterval: rules.positiveInt,
  onSample: rules.function,
  onProgress: rules.function,
  name: rules.string,
};

/** Readings of one process after a full GC; the kernel's series from smaps_rollup when it can be read. */
async function sampleSelf(iteration: number, elapsedMs: number, missing: Map<SeriesName, string>): Promise<SoakSample> {
  const usage = await memoryAfterGc(2);
  const resident = readResident('self');
  if (typeof resident === 'string') {
    missing.set('pss', `PSS: ${resident}`);
    missing.set('uss', `USS: ${resident}`);
  }
  const kernel = typeof resident === 'string' ? undefined : resident;
  return {
    iteration,
    elapsedMs,
    bytes: {
      heapUsed: usage.heapUsed,
      external: usage.external,
      arrayBuffers: usage.arrayBuffers,
      rss: kernel?.rss ?? usage.rss,
      pss: kernel?.pss ?? null,
      uss: kernel?.uss ?? null,
    },
  };
}

function leaseCounts(): LeaseCounts {
  const map: LeaseCounts = new Map();
  for (const s of inspect().leases.bySite) map.set(`${s.kind}\0${s.site ?? ''}`, s);
  return map;
}

/**
 * Runs `task` `warmup` times, then `iterations` times — each run in its own `withScope`,
 * `concurrency` at a time — and samples memory after a full GC at each checkpoint. Resolves with
 * the samples, a Theil–Sen fit of bytes per iteration with its 95 % interval for every series, a
 * verdict (`stable`, `bounded`: grew and stopped, `leaking`: keeps growing) and the functions whose
 * retained allocations grew. Rejects when the task throws (with the iteration it threw on). Needs
 * no `--expose-gc`. Run it alone: everything the process allocates meanwhile is measured too.
 *
 * @example
 * const result = await soak(() => handle(request), { iterations: 20_000 });
 * if (result.verdict === 'leaking') console.log(result.sites[0]);
 */
export async function soak(task: SoakTask, options: SoakOptions = {}): Promise<SoakResult> {
  if (typeof task !== 'function') throw new TypeError(`soak(): task must be a function, got ${typeof task}`);
  validateOptions('soak()', options, optionRules);
  const iterations = options.iterations ?? 10_000;
  const warmup = options.warmup ?? Math.min(1000, Math.ceil(iterations / 10));
  const concurrency = options.concurrency ?? 1;
  const marks =
    typeof options.checkpoints === 'object' ? [...options.checkpoints] : geometricCheckpoints(iterations, options.checkpoints ?? 11);
  if (marks[marks.length - 1] !== iterations) {
    if ((marks[marks.length - 1] as number) > iterations)
      throw new TypeError(`soak(): option 'checkpoints' must end at or before iterations (${iterations}), got ${marks[marks.length - 1]}`);
    marks.push(iterations);
  }
  const profile = options.profile ?? true;
  const samplingInterval = options.samplingInterval ?? 4096;
  const total = warmup + iterations;
  const every = Math.max(1, Math.floor(total / 200));
  let done = 0;

  const runs = async (from: number, to: number): Promise<void> => {
    let next = from;
    const worker = async (): Promise<void> => {
      while (next < to) {
        const i = next++;
        try {
          await withScope((scope) => {
            const out = task(i, scope);
            return isPromiseLike(out) ? out : undefined;
          });
        } catch (error) {
          next = to; // the other workers stop too: nothing runs once soak() has rejected
          throw new Error(
            `soak(): the task threw on iteration ${i}${i < 0 ? ' (warm-up)' : ''}: ${error instanceof Error ? error.message : String(error)}`,
            {
              cause: error,
            },
          );
        }
        if (++done % every === 0) options.onProgress?.(done, total);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, to - from) }, worker));
  };

  const restoreInlining = profile ? withoutInlining() : undefined;
  try {
    await runs(-warmup, 0);
  } catch (error) {
    restoreInlining?.();
    throw error;
  }
  const missing = new Map<SeriesName, string>();
  const notes: string[] = [];
  let sampler: AllocationSampler | undefined;
  let profilerNote: string | null = profile ? null : 'off (profile: false)';
  const samples: SoakSample[] = [];
  const live: SiteBytes[] = [];
  const leases: LeaseCounts[] = [];
  const started = performance.now();
  try {
    if (profile) {
      const starting = new AllocationSampler();
      try {
        await starting.start(samplingInterval);
        sampler = starting;
      } catch (error) {
        // Another inspector session holding the profiler, or a runtime without one: soak without sites.
        await starting.stop().catch(() => undefined);
        profilerNote = `the sampling heap profiler could not start: ${error instanceof Error ? error.message : String(error)}`;
      }
    }
    const take = async (iteration: number): Promise<void> => {
      const sample = await sampleSelf(iteration, performance.now() - started, missing);
      samples.push(sample);
      if (sampler !== undefined) live.push(await sampler.live());
      leases.push(leaseCounts());
      options.onSample?.(sample, samples.length - 1, marks.length + 1);
    };
    await take(0);
    let at = 0;
    for (const mark of marks) {
      await runs(at, mark);
      at = mark;
      await take(mark);
    }
  } finally {
    restoreInlining?.();
    await sampler?.stop();
  }
  const durationMs = performance.now() - started;
  for (const reason of new Set(missing.values())) notes.push(`${reason}: PSS and USS are not shown`);
  const conclusion = conclude(samples, ['heapUsed', 'external'], missing, options.threshold ?? 1);
  const xs = samples.map((s) => s.iteration);
  return {
    target: { kind: 'function', name: options.name ?? (task.name || '(anonymous)') },
    iterations,
    warmup,
    concurrency,
    durationMs,
    node: process.version,
    samples,
    ...conclusion,
    sites: live.length > 0 ? growingSites(xs, live, floorOf('heapUsed', 0).bytes) : [],
    profiler: { enabled: sampler !== undefined, samplingInterval, note: profilerNote },
    leaseSites: growingLeaseSites(leases),
    notes,
  };
}
