/**
 * A tiny benchmark harness with no dependency.
 *
 * Noise on a shared machine (2 cores, other processes running) hits whatever runs at that moment,
 * so variants are never measured one after the other in long blocks. Instead every variant of a
 * set is calibrated (so that one round lasts at least `roundMs`), warmed up, and then measured in
 * several interleaved rounds — A B C, B C A, C A B, ... The statistic of a variant is the median
 * of its rounds (robust against a round that an outside process slowed down); min and max show the
 * spread. A ratio is the median of the per-round ratios: round i of A over round i of B, measured
 * next to each other, so that a drift slower than a round (the machine's load, where the scheduler
 * puts a client and its server) cancels out instead of landing on whichever variant it hit. An A/A
 * check (mysql2's SELECT 1 against itself) moved 0.84–1.19x as a ratio of medians over 11 rounds,
 * and 1.01–1.04x as a median of per-round ratios over 31 to 61. A round repeats its chunk of work until it has
 * lasted `roundMs`. Process CPU time is recorded next to wall time as a second opinion.
 *
 * There is deliberately no forced GC between rounds: a full `gc()` shrinks the heap limits, so the
 * round after it runs with incremental marking (write barriers on) and, once no instance is left,
 * V8 drops the classes' maps and deoptimizes every function that used them ("weak objects").
 * Rounds that followed a forced GC were 1.5–3x slower than steady state. Each variant pays for the
 * GC its own garbage causes, shared fairly by interleaving.
 */

/** One way of doing the thing being measured. `run(n)` performs `n` operations. */
export interface Variant {
  readonly name: string;
  /** Runs before every round of this variant, untimed (e.g. `configure({ sites })`). */
  readonly setup?: () => void;
  readonly run: (n: number) => void | Promise<void>;
  /**
   * The fewest operations one `run(n)` call of a measured round gets (default: a fifth of a
   * calibrated round). For a driver with a cost per call rather than per operation, such as 100
   * workers started and drained: its calls must be long enough to measure what runs between.
   */
  readonly minChunk?: number | undefined;
}

export interface MeasureOptions {
  /** Measured rounds per variant. Default 11. */
  readonly rounds?: number;
  /** Minimum length of one round, in ms. Default 100 (calibration aims at 1.3x this). */
  readonly roundMs?: number;
  /** Called with a line of progress. */
  readonly log?: (line: string) => void;
}

/** The rounds of one variant, in ns per operation. */
export interface Sample {
  readonly name: string;
  /** Operations per round (mean). */
  readonly ops: number;
  /** ns/op of each round, in the order measured. */
  readonly rounds: readonly number[];
  readonly median: number;
  /** Median process CPU time per op (ns): less sensitive to the OS descheduling the process. */
  readonly cpuMedian: number;
  readonly min: number;
  readonly max: number;
  /** The shortest round, in ms (to check that rounds lasted long enough). */
  readonly shortestRoundMs: number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const gc: () => void =
  typeof globalThis.gc === 'function'
    ? (globalThis.gc as () => void)
    : () => {
        throw new Error('run node with --expose-gc (npm run bench does)');
      };

/** Forces a full collection. */
export function collect(): void {
  gc();
}

async function timeOnce(variant: Variant, n: number): Promise<number> {
  variant.setup?.();
  const t0 = process.hrtime.bigint();
  const pending = variant.run(n);
  if (pending !== undefined) await pending;
  return Number(process.hrtime.bigint() - t0);
}

/** One timed round: operations run, wall time and process CPU time, in ns. */
export interface RoundTime {
  readonly ops: number;
  readonly ns: number;
  readonly cpuNs: number;
}

/**
 * One measured round: runs `run(chunk)` until at least `minMs` have passed (once, with 0), so that
 * a round is never shorter than asked even when the calibration ran at a slow moment. CPU time is
 * not inflated when the OS deschedules the process (a busy machine), but includes V8's helper
 * threads (parallel GC): it is a second opinion, not the headline.
 */
export async function timeRound(variant: Pick<Variant, 'setup' | 'run'>, chunk: number, minMs: number): Promise<RoundTime> {
  variant.setup?.();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const limit = t0 + BigInt(Math.round(minMs * 1e6));
  let ops = 0;
  let now = t0;
  do {
    const pending = variant.run(chunk);
    if (pending !== undefined) await pending;
    ops += chunk;
    now = process.hrtime.bigint();
  } while (now < limit);
  const cpu = process.cpuUsage(cpu0);
  return { ops, ns: Number(now - t0), cpuNs: (cpu.user + cpu.system) * 1000 };
}

/** A variant's sample from its rounds, in the order measured. */
export function sampleOf(name: string, rounds: readonly RoundTime[]): Sample {
  const values = rounds.map((r) => r.ns / r.ops);
  return {
    name,
    ops: Math.round(rounds.reduce((sum, r) => sum + r.ops, 0) / rounds.length),
    rounds: values,
    median: median(values),
    cpuMedian: median(rounds.map((r) => r.cpuNs / r.ops)),
    min: Math.min(...values),
    max: Math.max(...values),
    shortestRoundMs: Math.min(...rounds.map((r) => r.ns)) / 1e6,
  };
}

/** Finds how many operations fill `targetMs`. The runs also serve as the first warm-up. */
async function calibrate(variant: Variant, targetMs: number): Promise<number> {
  let n = 16;
  for (;;) {
    const ns = await timeOnce(variant, n);
    if (ns >= targetMs * 0.25e6) return Math.max(1, Math.ceil((n * targetMs * 1e6) / ns));
    n = ns < targetMs * 0.01e6 ? n * 16 : n * 4;
  }
}

/** Measures the variants in interleaved rounds. Returns one sample per variant, in the given order. */
export async function measure(variants: readonly Variant[], options: MeasureOptions = {}): Promise<Sample[]> {
  const rounds = options.rounds ?? 11;
  const roundMs = options.roundMs ?? 100;
  const aimMs = roundMs * 1.3;
  const log = options.log ?? (() => {});
  collect(); // start the set from a clean heap; never again inside it (see above)
  const ops: number[] = [];
  for (const v of variants) ops.push(await calibrate(v, aimMs));
  // Warm-up: two full rounds each, interleaved like the measured ones, re-calibrating after each:
  // early calibration runs are often unoptimized and would make the measured rounds too short.
  for (let w = 0; w < 2; w++) {
    for (const [i, v] of variants.entries()) {
      const n = ops[i] as number;
      const ns = await timeOnce(v, n);
      ops[i] = Math.max(1, Math.ceil((n * aimMs * 1e6) / ns));
    }
  }
  const times: RoundTime[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length; // rotate the order so no variant always runs first
      // Chunks of about a fifth of a calibrated round (or minChunk), repeated until the round has lasted roundMs.
      const variant = variants[i] as Variant;
      const chunk = Math.max(1, variant.minChunk ?? 1, Math.ceil((ops[i] as number) / 5));
      (times[i] as RoundTime[]).push(await timeRound(variant, chunk, roundMs));
    }
  }
  const samples = variants.map((v, i) => sampleOf(v.name, times[i] as RoundTime[]));
  for (const s of samples) {
    const line = `${s.name.padEnd(52)} ${fmtNs(s.median).padStart(7)} ns/op  [${fmtNs(s.min)} – ${fmtNs(s.max)}]  cpu ${fmtNs(s.cpuMedian)} ns/op`;
    log(`    ${line}  ${s.ops} ops/round, shortest ${s.shortestRoundMs.toFixed(0)} ms`);
  }
  return samples;
}

/**
 * What the `ops` operations right after a full collection cost: each round forces one (untimed),
 * then times one `run(ops)` of each variant, in a rotating order. For code that must stay fast
 * across the major GCs a service has every few seconds: V8 drops the shapes of classes with no
 * instance alive, and the code compiled against them (see src/util/shapes.ts).
 */
export async function afterCollection(variants: readonly Variant[], rounds: number, ops: number): Promise<Sample[]> {
  for (const v of variants) await timeOnce(v, ops * 5); // warm up, so that what is measured is the collection's doing
  const times: RoundTime[][] = variants.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + r) % variants.length;
      collect();
      (times[i] as RoundTime[]).push(await timeRound(variants[i] as Variant, ops, 0));
    }
  }
  return variants.map((v, i) => sampleOf(v.name, times[i] as RoundTime[]));
}

/** A target a row is checked against. */
export type Target =
  | { readonly maxRatio: number }
  | { readonly maxDeltaNs: number }
  | { readonly maxBytes: number }
  | { readonly maxValue: number; readonly unit: string };

/** One line of the results table. */
export interface Row {
  readonly group: string;
  readonly name: string;
  /** 'time': ns/op against a baseline; 'memory': bytes per unit; 'value': any other measured figure, in `unit`. */
  readonly kind: 'time' | 'memory' | 'value';
  /** Median ns/op (time) or bytes per unit (memory). */
  readonly value: number;
  readonly unit: string;
  readonly min?: number;
  readonly max?: number;
  readonly baselineName?: string;
  readonly baseline?: number;
  readonly baselineMin?: number;
  readonly baselineMax?: number;
  /** The median of the per-round ratios (round i of the variant over round i of the baseline). */
  readonly ratio?: number;
  /** The lowest and highest per-round ratio. */
  readonly ratioMin?: number;
  readonly ratioMax?: number;
  /** Ratio of the medians of process CPU time per op (a second opinion on a busy machine). */
  readonly cpuRatio?: number;
  /** median(value) - median(baseline), ns. */
  readonly deltaNs?: number;
  readonly target?: Target;
  /** undefined when the row has no target. */
  readonly met?: boolean;
  readonly note?: string;
  /** Extra measured numbers (memory rows). */
  readonly details?: Readonly<Record<string, number>>;
}

/** Builds a row comparing `a` with the baseline `b` (two samples of the same interleaved set). */
export function compareRow(group: string, name: string, a: Sample, b: Sample, target?: Target, note?: string): Row {
  const perRound = a.rounds.map((x, i) => x / (b.rounds[i] as number));
  const ratio = median(perRound);
  const deltaNs = a.median - b.median;
  let met: boolean | undefined;
  if (target !== undefined) {
    if ('maxRatio' in target) met = ratio <= target.maxRatio;
    else if ('maxDeltaNs' in target) met = deltaNs <= target.maxDeltaNs;
  }
  return {
    group,
    name,
    kind: 'time',
    value: a.median,
    unit: 'ns/op',
    min: a.min,
    max: a.max,
    baselineName: b.name,
    baseline: b.median,
    baselineMin: b.min,
    baselineMax: b.max,
    ratio,
    ratioMin: Math.min(...perRound),
    ratioMax: Math.max(...perRound),
    cpuRatio: a.cpuMedian / b.cpuMedian,
    deltaNs,
    ...(target === undefined ? {} : { target }),
    ...(met === undefined ? {} : { met }),
    ...(note === undefined ? {} : { note }),
  };
}

export function fmtNs(ns: number): string {
  return ns >= 10_000 ? ns.toFixed(0) : ns >= 100 ? ns.toFixed(0) : ns.toFixed(1);
}

function fmtTarget(t: Target | undefined): string {
  if (t === undefined) return '';
  if ('maxRatio' in t) return `≤ ${t.maxRatio}x`;
  if ('maxDeltaNs' in t) return `≤ +${t.maxDeltaNs} ns`;
  if ('maxValue' in t) return `< ${t.maxValue} ${t.unit}`;
  return `< ${t.maxBytes} B`;
}

function fmtBytes(b: number): string {
  return Math.abs(b) >= 100 ? b.toFixed(0) : Math.abs(b) >= 1 ? b.toFixed(1) : b.toFixed(3);
}

/** Renders rows as a plain-text table (also valid Markdown). */
export function formatTable(rows: readonly Row[]): string {
  const header = [
    'benchmark',
    'measured: median [min–max]',
    'baseline: median [min–max]',
    'ratio [per-round range]',
    'CPU ratio',
    'Δ',
    'target',
    'met',
  ];
  const lines: string[][] = [header];
  for (const r of rows) {
    if (r.kind === 'time') {
      lines.push([
        `${r.group}: ${r.name}`,
        `${fmtNs(r.value)} ns [${fmtNs(r.min ?? r.value)}–${fmtNs(r.max ?? r.value)}]`,
        r.baseline === undefined
          ? ''
          : `${fmtNs(r.baseline)} ns [${fmtNs(r.baselineMin ?? r.baseline)}–${fmtNs(r.baselineMax ?? r.baseline)}] (${r.baselineName ?? ''})`,
        r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}x [${(r.ratioMin ?? r.ratio).toFixed(2)}–${(r.ratioMax ?? r.ratio).toFixed(2)}]`,
        r.cpuRatio === undefined ? '' : `${r.cpuRatio.toFixed(2)}x`,
        r.deltaNs === undefined ? '' : `${r.deltaNs >= 0 ? '+' : ''}${fmtNs(r.deltaNs)} ns`,
        fmtTarget(r.target),
        r.met === undefined ? '' : r.met ? 'yes' : 'NO',
      ]);
    } else {
      lines.push([
        `${r.group}: ${r.name}`,
        `${fmtBytes(r.value)} ${r.unit}`,
        r.note ?? '',
        '',
        '',
        '',
        fmtTarget(r.target),
        r.met === undefined ? '' : r.met ? 'yes' : 'NO',
      ]);
    }
  }
  const widths = header.map((_, c) => Math.max(...lines.map((l) => (l[c] ?? '').length)));
  const render = (l: string[]) => `| ${l.map((cell, c) => cell.padEnd(widths[c] as number)).join(' | ')} |`;
  return [render(lines[0] as string[]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.slice(1).map(render)].join('\n');
}
