/**
 * The heap after a full garbage collection: what test mode's expectNoHeapGrowth() and the soak
 * harness measure. A full collection is forced without the user passing `--expose-gc`: the flag
 * is set at run time and `gc` taken from a fresh context (V8 exposes it to contexts created after
 * the flag is set), which Node supports on every version custodian runs on.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
// node:timers, not the global: fake timers (vi.useFakeTimers) must not freeze a measurement.
import { setImmediate } from 'node:timers';

let gcFn: (() => void) | undefined;

/**
 * A function that runs a full, synchronous (mark-compact) collection: `global.gc` when Node was
 * started with `--expose-gc`, else the same function obtained at run time. Call it with no
 * argument: on Node 20, `gc({ type: 'major' })` runs only a minor collection.
 */
export function fullGc(): () => void {
  if (gcFn !== undefined) return gcFn;
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return (gcFn = exposed as () => void);
  setFlagsFromString('--expose-gc');
  return (gcFn = runInNewContext('gc') as () => void);
}

/** One turn of the event loop: finalizers (FinalizationRegistry callbacks) run there, never during gc(). */
export const turn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * `process.memoryUsage()` once the garbage is collected: a GC, a turn of the event loop (custodian's
 * GC backstop gives resources back there), and another GC; repeated `rounds` times, keeping the
 * reading with the lowest heapUsed, so that one reading the process allocated into is not taken.
 */
export async function memoryAfterGc(rounds = 1): Promise<NodeJS.MemoryUsage> {
  const collect = fullGc();
  let lowest: NodeJS.MemoryUsage | undefined;
  for (let round = 0; round < rounds; round++) {
    collect();
    await turn();
    collect();
    const usage = process.memoryUsage();
    if (lowest === undefined || usage.heapUsed < lowest.heapUsed) lowest = usage;
  }
  return lowest as NodeJS.MemoryUsage;
}

/** heapUsed after a full collection (see memoryAfterGc). */
export async function heapAfterGc(rounds = 1): Promise<number> {
  return (await memoryAfterGc(rounds)).heapUsed;
}
