/**
 * generic-pool, as custodian drives it (src/pool/generic-pool.ts). generic-pool forgets a resource
 * when its destroy starts, and an acquire queued in it would get a new resource at once: max + 1
 * live on the server until the destroy ends. A property run found it through the pool (seed
 * 1344985208 of test/property/pool-programs.test.ts: five connections live on a pool of four).
 */
import { expect, it } from 'vitest';
import { createGenericPool } from '../../src/pool/generic-pool.js';
import { flush } from '../helpers.js';

it('counts a destroy under way against max: a queued acquire gets a new resource only once it ended', async () => {
  let live = 0;
  let peak = 0;
  let destroying = 0;
  const finish: (() => void)[] = [];
  const pool = createGenericPool<{ n: number }>(
    {
      create: async () => {
        peak = Math.max(peak, ++live);
        return { n: live };
      },
      destroy: () => {
        destroying++;
        return new Promise<void>((resolve) =>
          finish.push(() => {
            live--;
            destroying--;
            resolve();
          }),
        );
      },
    },
    { max: 1, min: 0, fifo: false, autostart: true, evictionRunIntervalMillis: 0, numTestsPerEvictionRun: 1 },
    class {
      evict(): boolean {
        return false;
      }
    },
    () => destroying,
  );
  const first = await pool.acquire();
  let second: { n: number } | undefined;
  const waiting = pool.acquire().then((r) => (second = r));
  await pool.destroy(first);
  await flush();
  expect(live).toBe(1); // the first, still being destroyed
  expect(peak).toBe(1);
  expect(second).toBeUndefined();
  (finish.shift() as () => void)();
  await flush();
  pool.dispatch();
  await waiting;
  expect(second).toBeDefined();
  expect(peak).toBe(1);
  await pool.destroy(second as { n: number });
  (finish.shift() as () => void)();
  await pool.drain();
  await pool.clear();
});
