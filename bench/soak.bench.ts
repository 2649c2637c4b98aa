/**
 * custodian/soak: how long a soak takes and how close it gets to the truth.
 *
 *  - 100,000 iterations of a task that retains exactly 1 KiB (the issue's target: under 60 s),
 *    with the allocation profiler and without, against the same loop measured by hand (the task
 *    called 100,000 times with one reading after GC before and after: what people do today);
 *  - the measured rate against the truth for 64 B and 1 KiB per iteration.
 *
 * One run each (a soak is seconds long; the figure is wall time on this machine, load included).
 */
import { memoryAfterGc } from '../src/internal.js';
import { soak } from '../adapters/soak/index.js';
import type { Row } from './harness.js';

let head: unknown[] | null = null;
/** Retains 48 + 8k bytes: one JSArray of k slots (4 words + 2 words of header + k words), linked to the previous one. */
function keep(slots: number): void {
  const node: unknown[] = new Array<unknown>(slots);
  node[0] = head;
  head = node;
}
const leak = (bytes: number) => () => keep((bytes - 48) / 8);

async function byHand(iterations: number, task: () => void): Promise<{ seconds: number; perIteration: number }> {
  const t0 = performance.now();
  const before = (await memoryAfterGc(2)).heapUsed;
  for (let i = 0; i < iterations; i++) task();
  const after = (await memoryAfterGc(2)).heapUsed;
  return { seconds: (performance.now() - t0) / 1000, perIteration: (after - before) / iterations };
}

export async function soakBench(options: { quick?: boolean; log?: (line: string) => void } = {}): Promise<Row[]> {
  const log = options.log ?? (() => {});
  const iterations = options.quick === true ? 20_000 : 100_000;
  const rows: Row[] = [];
  const n = iterations.toLocaleString('en-US');

  head = null;
  const hand = await byHand(iterations, leak(1024));
  head = null;
  log(`    by hand: ${hand.seconds.toFixed(2)} s, ${hand.perIteration.toFixed(1)} B/iteration`);

  for (const profile of [true, false]) {
    const t0 = performance.now();
    const r = await soak(leak(1024), { iterations, profile });
    const seconds = (performance.now() - t0) / 1000;
    head = null;
    const top = r.sites[0];
    log(
      `    soak, profiler ${profile ? 'on' : 'off'}: ${seconds.toFixed(2)} s, ${r.verdict}, ${r.rate.bytesPerIteration.toFixed(1)} B/iteration [${r.rate.low.toFixed(1)}, ${r.rate.high.toFixed(1)}]${top === undefined ? '' : `, top site ${top.site} (${top.functionName})`}`,
    );
    rows.push({
      group: 'soak',
      name: `soak() of a 1 KiB/iteration leak, ${n} iterations, profiler ${profile ? 'on' : 'off'}`,
      kind: 'value',
      value: seconds,
      unit: 's',
      baselineName: 'the same loop by hand (2 readings)',
      baseline: hand.seconds,
      ratio: seconds / hand.seconds,
      target: { maxValue: 60, unit: 's' },
      met: seconds < 60,
      note: `${r.verdict}, ${r.rate.bytesPerIteration.toFixed(1)} B/iteration (95 % ${r.rate.low.toFixed(1)}–${r.rate.high.toFixed(1)}); the same loop by hand: ${hand.seconds.toFixed(2)} s (${(seconds / hand.seconds).toFixed(1)}x), ${hand.perIteration.toFixed(1)} B/iteration from 2 readings, no interval, no site`,
      details: { seconds, bytesPerIteration: r.rate.bytesPerIteration, low: r.rate.low, high: r.rate.high, checkpoints: r.samples.length },
    });
  }

  for (const bytes of [64, 1024]) {
    const r = await soak(leak(bytes), { iterations: 20_000 });
    head = null;
    const error = (r.rate.bytesPerIteration - bytes) / bytes;
    log(`    accuracy ${bytes} B: ${r.rate.bytesPerIteration.toFixed(1)} B/iteration (${(error * 100).toFixed(1)} %), ${r.verdict}`);
    rows.push({
      group: 'soak',
      name: `measured rate of a ${bytes} B/iteration leak (20,000 iterations)`,
      kind: 'memory',
      value: r.rate.bytesPerIteration,
      unit: 'B/iteration',
      target: { maxBytes: bytes * 1.2 },
      met: Math.abs(error) <= 0.2 && r.verdict === 'leaking',
      note: `truth ${bytes} B; error ${(error * 100).toFixed(1)} %; 95 % interval ${r.rate.low.toFixed(1)}–${r.rate.high.toFixed(1)}; top site ${r.sites[0]?.functionName ?? 'none'}`,
    });
  }
  return rows;
}
