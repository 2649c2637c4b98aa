/**
 * The periodic sweep on a big process: 100,000 open scopes, each holding a lease, laid out flat
 * (a server with 100,000 requests in flight) and as one chain 30,000 deep beside 70,000 flat ones
 * (a consumer that recurses into the next message). The sweep runs on its own timer, as in
 * production, while every scope turns stale, every lease is held too long and the growth sampler
 * counts them all: the worst case, every report at once.
 *
 * "Longest slice" is the longest the sweep itself held the event loop, as it reports on the
 * `custodian:sweep` channel. "Longest gap" is what the event loop felt: the largest gap between two
 * turns of a setImmediate loop running beside the sweep (nothing else runs), garbage collection
 * included (the reports allocate, and a minor GC over a heap of 100,000 scopes with their captured
 * stacks takes 20–30 ms here whoever triggers it). "Per scope" is the CPU time of the sweep's passes
 * divided by the scopes: while everything is reported once (formatting every site), and a steady
 * pass afterwards.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { channels, configure, openScope, resetConfig, type Scope } from '../src/index.js';
import { sweep } from '../src/registry.js';
import type { Row } from './harness.js';

const TOTAL = 100_000;
const release = () => {};

/** Opens the scopes: `depth` of them as one chain, the rest flat under one root; each holds a lease. */
function open(depth: number): Scope {
  const root = openScope({ name: 'root' });
  let parent = root;
  for (let i = 1; i < depth; i++) {
    parent = parent.run(() => openScope({ name: 'message' }));
    parent.track(i, { release, kind: 'connection' });
  }
  for (let i = depth; i < TOTAL; i++) {
    root.run(() => openScope({ name: 'request' })).track(i, { release, kind: 'connection' });
  }
  return root;
}

/** Runs the event loop until `done()` (at most `limitMs`) and returns the longest gap between two of its turns. */
async function longestGap(done: () => boolean, limitMs: number): Promise<{ maxMs: number; turns: number; ms: number }> {
  const start = performance.now();
  const end = start + limitMs;
  let last = start;
  let maxMs = 0;
  let turns = 0;
  while (last < end && !done()) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    const now = performance.now();
    maxMs = Math.max(maxMs, now - last);
    last = now;
    turns++;
  }
  return { maxMs, turns, ms: last - start };
}

async function shape(name: string, depth: number, log: (line: string) => void): Promise<Row[]> {
  resetConfig();
  let reports = 0;
  const thresholdMs = 300;
  configure({
    sites: 'always',
    leaks: 'reclaim',
    staleScopeMs: thresholdMs,
    leakThresholdMs: thresholdMs,
    growthIntervalMs: thresholdMs,
    onLeak: () => void reports++,
  });
  const root = open(depth);
  const opened = performance.now();
  let longestSlice = 0;
  let slices = 0;
  const onSlice = (message: unknown) => {
    slices++;
    longestSlice = Math.max(longestSlice, (message as { durationMs: number }).durationMs);
  };
  subscribe(channels.sweep, onSlice);
  const expected = 2 * TOTAL - 1; // every scope stale, every lease (all but the root's) held too long
  const cpu0 = process.cpuUsage();
  // Let the timer-driven sweep see everything turn stale, held too long and counted, in slices.
  const timed = await longestGap(() => reports >= expected, 60_000);
  const cpu = process.cpuUsage(cpu0);
  unsubscribe(channels.sweep, onSlice);
  const reportingNs = (cpu.user + cpu.system) * 1000;
  log(
    `    ${name}: ${reports} reports in ${Math.round(performance.now() - opened)} ms; longest slice ${longestSlice.toFixed(2)} ms of ${slices}; longest event-loop gap ${timed.maxMs.toFixed(2)} ms over ${timed.turns} turns`,
  );
  if (reports < expected) throw new Error(`expected at least ${expected} reports (stale scopes, held leases), got ${reports}`);
  // A steady pass: everything was reported once; the growth sampler still counts every lease.
  const t0 = performance.now();
  sweep();
  const steadyMs = performance.now() - t0;
  await root.close();
  resetConfig();
  return [
    {
      group: 'sweep',
      name: `${name}: longest slice (the sweep's own block)`,
      kind: 'value',
      value: longestSlice,
      unit: 'ms',
      target: { maxValue: 5, unit: 'ms' },
      met: longestSlice < 5,
      note: `${slices} slices, ${reports} reports`,
    },
    {
      group: 'sweep',
      name: `${name}: longest event-loop gap (GC included)`,
      kind: 'value',
      value: timed.maxMs,
      unit: 'ms',
      note: `${timed.turns} loop turns in ${Math.round(timed.ms)} ms`,
    },
    {
      group: 'sweep',
      name: `${name}: first passes (report everything), per scope`,
      kind: 'value',
      value: reportingNs / 1000 / TOTAL,
      unit: 'µs/scope',
      note: 'CPU time while every scope and lease is reported once (sites formatted, reports built), loop included',
    },
    {
      group: 'sweep',
      name: `${name}: steady pass, per scope`,
      kind: 'value',
      value: (steadyMs * 1e6) / TOTAL,
      unit: 'ns/scope',
      note: `${steadyMs.toFixed(1)} ms for ${TOTAL.toLocaleString('en-US')} scopes and leases (growth count included)`,
    },
  ];
}

export async function sweepBench(log: (line: string) => void): Promise<Row[]> {
  return [...(await shape('100,000 flat', 1, log)), ...(await shape('30,000 deep + 70,000 flat', 30_000, log))];
}
