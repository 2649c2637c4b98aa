/**
 * expectNoHeapGrowth(): runs a function many times and fails when the heap after garbage
 * collection keeps growing with the number of calls. The trend is fitted over the second half of
 * the samples, so a cache that fills during the first calls and then stays put does not fail.
 */
import { CustodianError, inspect } from '../../src/index.js';
import { heapAfterGc, isPromiseLike, rules, theilSen, validateOptions } from '../../src/internal.js';

/** Options of expectNoHeapGrowth(). */
export interface HeapGrowthOptions {
  /** Calls measured. Default 2000. */
  iterations?: number | undefined;
  /** Calls before measuring, for caches, lazy initialisation and the JIT. Default a tenth of `iterations`. */
  warmup?: number | undefined;
  /** Growth that fails: bytes per call of the heap after GC, fitted over the second half of the samples. Default 64. */
  maxBytesPerIteration?: number | undefined;
  /** Heap samples (each after a full GC) at evenly spaced points, at least 4. Default 8. */
  samples?: number | undefined;
}

/** One heap sample: after how many measured calls, and the heap used after a full GC. */
export interface HeapSample {
  readonly iteration: number;
  readonly heapUsed: number;
}

/** What expectNoHeapGrowth() measured. */
export interface HeapGrowth {
  readonly iterations: number;
  /** Growth per call of the heap after GC, fitted over the second half of the samples (Theil–Sen: the median of the slopes between pairs of samples). */
  readonly bytesPerIteration: number;
  readonly samples: readonly HeapSample[];
  /** custodian's acquisition sites whose count of outstanding leases grew during the measurement, most first. */
  readonly growingSites: readonly { readonly kind: string; readonly site: string | undefined; readonly growth: number }[];
}

/** Thrown by expectNoHeapGrowth() when the heap grows faster than allowed. */
export class HeapGrowthError extends CustodianError {
  override name = 'HeapGrowthError';
  readonly code = 'ERR_CUSTODIAN_HEAP_GROWTH';
  /** What was measured. */
  readonly growth: HeapGrowth;

  /** @internal */
  constructor(message: string, growth: HeapGrowth) {
    super(message);
    this.growth = growth;
  }
}

const optionRules = {
  iterations: rules.positiveInt,
  warmup: rules.count,
  maxBytesPerIteration: (value: unknown) =>
    typeof value === 'number' && value >= 0 && Number.isFinite(value) ? undefined : 'a number of bytes, 0 or more',
  samples: (value: unknown) => (typeof value === 'number' && Number.isInteger(value) && value >= 4 ? undefined : 'a whole number from 4'),
};

/**
 * The heap used after a full collection: the lowest of three readings, each taken right after
 * collections around a turn of the event loop (finalizers run there: custodian's GC backstop gives
 * resources back), so what the process allocates during the turn (the test runner's messages) is
 * not counted, and one reading it did get into is not taken.
 */
const settledHeap = (): Promise<number> => heapAfterGc(3);

/** Theil–Sen slope of heapUsed over iteration: the median of the pairwise slopes, so one noisy sample cannot make a trend. */
function slope(points: readonly HeapSample[]): number {
  return theilSen(
    points.map((p) => p.iteration),
    points.map((p) => p.heapUsed),
  ).slope;
}

function outstandingBySite(): Map<string, { kind: string; site: string | undefined; count: number }> {
  const map = new Map<string, { kind: string; site: string | undefined; count: number }>();
  for (const s of inspect().leases.bySite) map.set(`${s.kind}\0${s.site ?? ''}`, s);
  return map;
}

async function call(fn: () => unknown, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const result = fn();
    if (isPromiseLike(result)) await result;
  }
}

/**
 * Calls `fn` `warmup` times, then `iterations` times with the heap measured after full GC at
 * evenly spaced points, and resolves with what it measured; rejects with a `HeapGrowthError` when
 * the heap grows more than `maxBytesPerIteration` per call. Calls run one after another. Needs no
 * `--expose-gc`: the GC function is obtained at run time when Node was started without it.
 *
 * @example
 * await expectNoHeapGrowth(() => handler(request), { iterations: 5_000 });
 */
export async function expectNoHeapGrowth(fn: () => unknown, options: HeapGrowthOptions = {}): Promise<HeapGrowth> {
  if (typeof fn !== 'function') throw new TypeError(`expectNoHeapGrowth(): fn must be a function, got ${typeof fn}`);
  validateOptions('expectNoHeapGrowth()', options, optionRules);
  const iterations = options.iterations ?? 2000;
  const count = options.samples ?? 8;
  if (iterations < count - 1)
    throw new TypeError(`expectNoHeapGrowth(): option 'iterations' must be at least samples - 1 (${count - 1}), got ${iterations}`);
  const max = options.maxBytesPerIteration ?? 64;
  await call(fn, options.warmup ?? Math.ceil(iterations / 10));
  const before = outstandingBySite();
  const samples: HeapSample[] = [{ iteration: 0, heapUsed: await settledHeap() }];
  let done = 0;
  for (let i = 1; i < count; i++) {
    const upTo = Math.round((iterations * i) / (count - 1));
    await call(fn, upTo - done);
    done = upTo;
    samples.push({ iteration: done, heapUsed: await settledHeap() });
  }
  const growingSites = [...outstandingBySite().entries()]
    .map(([key, s]) => ({ kind: s.kind, site: s.site, growth: s.count - (before.get(key)?.count ?? 0) }))
    .filter((s) => s.growth > 0)
    .sort((a, b) => b.growth - a.growth);
  const bytesPerIteration = slope(samples.slice(Math.floor(count / 2) - (count % 2 === 0 ? 1 : 0)));
  const growth: HeapGrowth = { iterations, bytesPerIteration, samples, growingSites };
  if (bytesPerIteration <= max) return growth;
  const first = samples[0]?.heapUsed ?? 0;
  const last = samples[samples.length - 1]?.heapUsed ?? 0;
  const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
  throw new HeapGrowthError(
    [
      `The heap grew by ${Math.round(bytesPerIteration)} B per call over ${iterations} calls (after GC: ${mb(first)} at the start, ${mb(last)} at the end); the limit is ${max} B per call.`,
      ...(growingSites.length > 0
        ? [
            'Leases still held, by acquisition site, that grew during the calls:',
            ...growingSites.slice(0, 5).map((s) => `  +${s.growth}  ${s.kind}  ${s.site ?? '(site not recorded)'}`),
          ]
        : [
            'No lease custodian knows of grew: look for a cache, listener or array the function adds to (a heap snapshot before and after shows what).',
          ]),
      'Something each call creates stays reachable. If it is a cache that is meant to fill, raise `warmup` past the point where it is full.',
    ].join('\n'),
    growth,
  );
}
