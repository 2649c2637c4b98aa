/**
 * custodian/redis against raw ioredis, on the Redis at 127.0.0.1:6379 (BENCH_REDIS_HOST /
 * BENCH_REDIS_PORT override). Every variant runs inside one long-lived custodian scope, so
 * AsyncLocalStorage is enabled in both arms; rounds are interleaved (see harness.ts).
 *
 * 1. GET/SET on the adapter's shared client vs a raw ioredis client: 1 command in flight, and 50.
 *    Target: throughput at least 0.95x raw (ns per command at most 1/0.95 = 1.053x).
 * 2. A dedicated connection: acquire() + PING + release vs a hand-written generic-pool of ioredis
 *    clients doing the same. Target: at most 1.2x.
 * 3. The figure that tells users which to use: 50 GETs in flight on the shared client vs the same
 *    50 concurrent tasks each borrowing one of 10 dedicated connections for its GET.
 *
 * Skipped, with a note, when Redis is unreachable.
 */
import genericPool from 'generic-pool';
import { Redis } from 'ioredis';
import { createRedis } from '../adapters/redis/index.js';
import { openScope } from '../src/index.js';
import { compareRow, measure, type MeasureOptions, type Row } from './harness.js';
import { sites } from './scope.bench.js';

const IN_FLIGHT = 50;
const POOL = 10;

export async function redisBench(options: MeasureOptions, note: (line: string) => void): Promise<Row[]> {
  const log = options.log ?? (() => {});
  const host = process.env['BENCH_REDIS_HOST'] ?? '127.0.0.1';
  const port = Number(process.env['BENCH_REDIS_PORT'] ?? 6379);
  const key = `custodian-bench:${process.pid}:key`;
  const raw = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  raw.on('error', () => {});
  try {
    await raw.connect();
    await raw.set(key, 'value');
  } catch (error) {
    raw.disconnect();
    const line = `redis rows skipped: Redis at ${host}:${port} is unreachable (${error instanceof Error ? error.message : String(error)})`;
    log(`  ${line}`);
    note(line);
    return [];
  }
  const redis = createRedis({ host, port, name: 'bench redis', pool: { max: POOL } });
  const gp = genericPool.createPool<Redis>(
    {
      create: async () => {
        const c = new Redis({ host, port, lazyConnect: true, retryStrategy: () => null });
        await c.connect();
        return c;
      },
      destroy: async (c) => void (await c.quit()),
    },
    { max: POOL },
  );
  const scope = openScope({ name: 'redis bench' });
  const shared = redis.client;
  try {
    // One function per variant: optimized code and type feedback belong to a function.
    const oneRaw = async (n: number) => {
      for (let i = 0; i < n; i++) await (i % 2 === 0 ? raw.set(key, 'value') : raw.get(key));
    };
    const oneShared = async (n: number) => {
      for (let i = 0; i < n; i++) await (i % 2 === 0 ? shared.set(key, 'value') : shared.get(key));
    };
    const manyRaw = async (n: number) => {
      for (let done = 0; done < n; done += IN_FLIGHT) {
        const batch: Promise<unknown>[] = [];
        for (let i = 0; i < IN_FLIGHT; i++) batch.push(i % 2 === 0 ? raw.set(key, 'value') : raw.get(key));
        await Promise.all(batch);
      }
    };
    const manyShared = async (n: number) => {
      for (let done = 0; done < n; done += IN_FLIGHT) {
        const batch: Promise<unknown>[] = [];
        for (let i = 0; i < IN_FLIGHT; i++) batch.push(i % 2 === 0 ? shared.set(key, 'value') : shared.get(key));
        await Promise.all(batch);
      }
    };
    const gpPing = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const c = await gp.acquire();
        await c.ping();
        await gp.release(c);
      }
    };
    const dedicatedPing = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const lease = await redis.acquire();
        await lease.value.ping();
        await lease.release();
      }
    };
    const spreadDedicated = async (n: number) => {
      for (let done = 0; done < n; done += IN_FLIGHT) {
        const batch: Promise<unknown>[] = [];
        for (let i = 0; i < IN_FLIGHT; i++) batch.push(redis.use((c) => c.get(key)));
        await Promise.all(batch);
      }
    };
    const inScope = (run: (n: number) => Promise<void>) => (n: number) => scope.run(() => run(n));
    const off = sites('off');
    const sampled = sites('sampled');

    log('  GET/SET, shared client vs raw ioredis');
    const [r1, s1, r50, s50] = await measure(
      [
        { name: 'raw ioredis GET/SET, 1 in flight', setup: off, run: inScope(oneRaw) },
        { name: 'custodian/redis client GET/SET, 1 in flight', setup: off, run: inScope(oneShared) },
        { name: `raw ioredis GET/SET, ${IN_FLIGHT} in flight`, setup: off, run: inScope(manyRaw) },
        { name: `custodian/redis client GET/SET, ${IN_FLIGHT} in flight`, setup: off, run: inScope(manyShared) },
      ],
      options,
    );
    log('  dedicated acquire + PING + release vs generic-pool of ioredis clients');
    const [gpS, dOff, dSampled, dAlways] = await measure(
      [
        { name: `generic-pool of ioredis clients (max ${POOL}): acquire + PING + release`, setup: off, run: inScope(gpPing) },
        { name: 'custodian/redis acquire + PING + release [sites off]', setup: off, run: inScope(dedicatedPing) },
        { name: 'custodian/redis acquire + PING + release [sites sampled]', setup: sampled, run: inScope(dedicatedPing) },
        { name: 'custodian/redis acquire + PING + release [sites always]', setup: sites('always'), run: inScope(dedicatedPing) },
      ],
      options,
    );
    log(`  ${IN_FLIGHT} GETs in flight: shared client vs ${POOL} dedicated connections`);
    const [sharedMany, spread] = await measure(
      [
        { name: `shared client, ${IN_FLIGHT} GET/SET in flight`, setup: sampled, run: inScope(manyShared) },
        { name: `${IN_FLIGHT} tasks on ${POOL} dedicated connections, use() + GET each`, setup: sampled, run: inScope(spreadDedicated) },
      ],
      options,
    );
    const throughput = { maxRatio: 1.053 }; // >= 0.95x raw ops/s
    const g = 'redis';
    const opsPerSec = (ns: number) => Math.round(1e9 / ns).toLocaleString('en-US');
    return [
      compareRow(g, 'shared client GET/SET, 1 in flight (target: >= 0.95x ops/s)', s1!, r1!, throughput, 'vs raw ioredis'),
      compareRow(g, `shared client GET/SET, ${IN_FLIGHT} in flight (target: >= 0.95x ops/s)`, s50!, r50!, throughput, 'vs raw ioredis'),
      compareRow(g, 'dedicated acquire + PING + release, sites off (target row)', dOff!, gpS!, { maxRatio: 1.2 }, 'vs generic-pool'),
      compareRow(g, 'dedicated acquire + PING + release, sites sampled (prod default)', dSampled!, gpS!, { maxRatio: 1.2 }),
      compareRow(g, 'dedicated acquire + PING + release, sites always (dev default)', dAlways!, gpS!, undefined, 'a stack per acquire'),
      compareRow(
        g,
        `${IN_FLIGHT} in flight: ${POOL} dedicated ${opsPerSec(spread!.median)} ops/s vs shared ${opsPerSec(sharedMany!.median)} ops/s`,
        spread!,
        sharedMany!,
        undefined,
        'which to use: the shared client',
      ),
    ];
  } finally {
    await scope.close();
    await raw.del(key);
    raw.disconnect();
    await redis.close();
    await gp.drain();
    await gp.clear();
  }
}
