/**
 * Memory benchmarks: does heap stay flat over many scopes, and what does a live lease weigh?
 *
 * Heap is `process.memoryUsage().heapUsed` after forced full collections (with a turn of the event
 * loop between them, so that FinalizationRegistry callbacks and pending microtasks run). Each
 * "flat" test warms up with 10,000 iterations, measures, runs its iterations, measures again and
 * divides the difference by the iteration count.
 */
import { configure, openScope, withScope, type LeakReport, type Lease, type Scope } from '../src/index.js';
import { collect, type Row } from './harness.js';
import { sites, type SitesMode } from './scope.bench.js';

interface Resource {
  id: number;
}
const sink = { count: 0 };
function release(_r: Resource): void {
  sink.count++;
}

/**
 * heapUsed after GC, once things have settled. Several passes: FinalizationRegistry callbacks run
 * between them, and V8 flushes the bytecode of functions unused for a few GCs (the earlier suites'),
 * which would otherwise show up as a heap that shrinks during the measurement.
 */
export async function settledHeap(): Promise<number> {
  for (let i = 0; i < 8; i++) {
    collect();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  collect();
  return process.memoryUsage().heapUsed;
}

export interface MemoryOptions {
  /** Iterations of each flatness test. Default 1,000,000. */
  readonly iterations?: number;
  /** Leases held at once for the per-lease weight. Default 100,000. */
  readonly live?: number;
  readonly log?: (line: string) => void;
}

export async function flat(
  name: string,
  unit: string,
  iterations: number,
  loop: (n: number) => Promise<void> | void,
  log: (line: string) => void,
): Promise<Row> {
  await loop(10_000); // warm-up
  const before = await settledHeap();
  const t0 = performance.now();
  await loop(iterations);
  const ms = performance.now() - t0;
  const after = await settledHeap();
  const perOp = (after - before) / iterations;
  log(
    `    ${name}: heap ${before} -> ${after} B after GC, ${perOp.toFixed(4)} B/${unit}, ${((ms * 1e6) / iterations).toFixed(0)} ns/${unit}`,
  );
  return {
    group: 'memory',
    name: `${name} (${iterations.toLocaleString('en-US')}x)`,
    kind: 'memory',
    value: perOp,
    unit: `B/${unit}`,
    target: { maxBytes: 1 },
    met: perOp < 1,
    note: `heap ${mb(before)} → ${mb(after)} MB`,
    details: { heapBefore: before, heapAfter: after, iterations, nsPerIteration: (ms * 1e6) / iterations },
  };
}

function mb(bytes: number): string {
  return (bytes / 1048576).toFixed(2);
}

/**
 * The weight of a live lease: `count` leases held at once in one scope. With sites recorded, it is
 * measured twice: as captured (a raw stack), and after every site was formatted — what the growth
 * sampler (every `growthIntervalMs`) or a report does to the leases it looks at. The sampler is
 * off during the measurement so that the first figure does not depend on when it happens to run.
 */
async function liveLeases(mode: SitesMode, count: number, log: (line: string) => void): Promise<Row> {
  sites(mode)();
  const previous = configure({ growthIntervalMs: 0 });
  try {
    const shared: Resource = { id: 0 }; // one value for all: what is measured is the lease, not the value
    const held: (Lease<Resource> | null)[] = [];
    for (let i = 0; i < count; i++) held.push(null); // allocated before the first measurement
    const scope: Scope = openScope({ name: `live leases [sites ${mode}]` });
    const before = await settledHeap();
    scope.run((s) => {
      for (let i = 0; i < count; i++) held[i] = s.track(shared, { release, kind: 'bench resource' });
    });
    const during = await settledHeap();
    let formatted = during;
    if (mode !== 'off') {
      let known = 0;
      for (const lease of held) if (lease?.site !== undefined) known++;
      if (known !== count) throw new Error(`expected ${count} recorded sites, got ${known}`);
      formatted = await settledHeap();
    }
    for (const lease of held) void lease?.release();
    held.fill(null);
    const released = await settledHeap();
    await scope.close();
    const perLease = (during - before) / count;
    const perFormatted = (formatted - during) / count;
    const left = (released - before) / count;
    log(
      `    live leases [sites ${mode}]: heap ${before} -> ${during} (held) -> ${formatted} (sites formatted) -> ${released} (released) B, ${perLease.toFixed(1)} B/lease`,
    );
    return {
      group: 'memory',
      name: `live lease weight, sites ${mode} (${count.toLocaleString('en-US')} held)`,
      kind: 'memory',
      value: perLease,
      unit: 'B/lease',
      note: `${mode === 'off' ? '' : `+${perFormatted.toFixed(0)} B/lease once sites are formatted; `}after release: ${left.toFixed(2)} B/lease left`,
      details: { heapBefore: before, heapHeld: during, heapFormatted: formatted, heapReleased: released, count },
    };
  } finally {
    configure({ growthIntervalMs: previous.growthIntervalMs });
  }
}

export async function memoryBench(options: MemoryOptions = {}): Promise<Row[]> {
  const iterations = options.iterations ?? 1_000_000;
  const live = options.live ?? 100_000;
  const log = options.log ?? (() => {});
  const rows: Row[] = [];

  // Production-like settings; leaks reclaimed quietly (a warning per scope would measure stderr),
  // and counted through onLeak to check that every one was reported.
  let reports = 0;
  const previous = configure({ sites: 'sampled', sampleRate: 0.01, leaks: 'reclaim', onLeak: (_r: LeakReport) => void reports++ });
  try {
    const shared: Resource = { id: 1 };
    rows.push(
      await flat(
        'withScope + 1 lease reclaimed by the scope (a leak)',
        'scope',
        iterations,
        async (n) => {
          for (let i = 0; i < n; i++) {
            await withScope(async (s) => {
              s.track(shared, { release, kind: 'bench resource' });
            });
          }
        },
        log,
      ),
    );
    if (reports !== iterations + 10_000) throw new Error(`expected ${iterations + 10_000} leak reports, got ${reports}`);
    rows.push(
      await flat(
        'withScope + 1 lease released by the code',
        'scope',
        iterations,
        async (n) => {
          for (let i = 0; i < n; i++) {
            await withScope(async (s) => {
              const lease = s.track(shared, { release, kind: 'bench resource' });
              await lease.release();
            });
          }
        },
        log,
      ),
    );
    rows.push(
      await flat(
        'openScope().close()',
        'scope',
        iterations,
        (n) => {
          for (let i = 0; i < n; i++) void openScope().close();
        },
        log,
      ),
    );
    rows.push(await liveLeases('off', live, log));
    rows.push(await liveLeases('always', live, log));
  } finally {
    configure(previous);
  }
  return rows;
}
