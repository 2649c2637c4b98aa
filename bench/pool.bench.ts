/**
 * Pool benchmarks: custodian's `createPool` against the generic-pool it wraps, and against mysql2's
 * own pool on a real server.
 *
 * 1. Sequential acquire + release of an in-memory resource (a plain object), pool max 10: raw
 *    generic-pool; custodian inside one long-lived scope; custodian with a fresh `withScope` per
 *    task (and, to split that figure, raw generic-pool inside the same `withScope`); custodian with
 *    no scope (an unscoped lease: FinalizationRegistry register + unregister). Each custodian
 *    variant runs with sites 'off' and with 'always' (the default outside NODE_ENV=production:
 *    a stack captured per acquire), and the long-lived-scope one also with 'sampled' (the
 *    production default). The 1.5x target (the issue's "acquire + release inside a scope vs raw
 *    generic-pool") is checked on the sites 'off' and 'sampled' rows; 'always' is reported.
 * 2. Contended: 100 workers share 10 resources, each doing acquire → `await null` → release until
 *    the round's operations are used up; ns per acquire + release. Custodian runs one scope per
 *    worker.
 * 3. mysql2: its pool's `getConnection()` + `release()` against generic-pool and custodian holding
 *    mysql2/promise connections, sequential, no query, on the MariaDB at 127.0.0.1:3306 (override
 *    with BENCH_MYSQL_HOST / BENCH_MYSQL_PORT). Skipped, with a note saying why, when the server is
 *    unreachable.
 * 4. Memory: heap retained per acquire + release after many iterations (after forced GCs).
 */
import genericPool from 'generic-pool';
import type * as MysqlPromise from 'mysql2/promise';
import { createPool, currentScope, openScope, withScope, type Pool } from '../src/index.js';
import { afterCollection, compareRow, measure, type MeasureOptions, type Row, type Variant } from './harness.js';
import { flat, settledHeap } from './memory.bench.js';
import { benchMysql, errorMessage } from './mysql-server.js';
import { AFTER_GC_CALLS, sites, type SitesMode } from './scope.bench.js';

/** The pooled stand-in: a plain object. */
interface Resource {
  readonly id: number;
}
let made = 0;
function newResource(): Resource {
  return { id: made++ };
}

export interface PoolBenchOptions {
  /** Iterations of each memory-flatness test. */
  readonly iterations: number;
  /** Records a line for the end of the report (a skipped row, and why). */
  readonly note: (line: string) => void;
}

/** Concurrent workers of the contended benchmark, sharing `MAX` resources. */
const WORKERS = 100;
const MAX = 10;
/** Iterations run before each memory-flatness test. */
const WARM_UP = 50_000;

function rawGenericPool(): genericPool.Pool<Resource> {
  return genericPool.createPool<Resource>({ create: async () => newResource(), destroy: async () => {} }, { max: MAX });
}

function custodianPool(name: string): Pool<Resource> {
  return createPool<Resource>({ create: newResource, destroy: () => {} }, { name, kind: 'bench resource', max: MAX });
}

async function closeGeneric<T>(gp: genericPool.Pool<T>): Promise<void> {
  await gp.drain();
  await gp.clear();
}

function noScope(): void {
  if (currentScope() !== undefined) throw new Error('the unscoped benchmark must run outside any scope');
}

export async function poolBench(options: MeasureOptions, extra: PoolBenchOptions): Promise<Row[]> {
  const log = options.log ?? (() => {});
  const rows: Row[] = [];
  rows.push(...(await sequential(options)));
  rows.push(...(await contended(options)));
  rows.push(...(await mysqlBench(options, extra.note)));
  // Last: the memory tests force full GCs, which would slow the rounds measured after them.
  rows.push(...(await memory(extra.iterations, log)));
  return rows;
}

// --- 1. sequential, in-memory resource -----------------------------------------------------------

async function sequential(options: MeasureOptions): Promise<Row[]> {
  const gp = rawGenericPool();
  const pool = custodianPool('bench sequential');
  const scope = openScope({ name: 'pool bench' });

  // One function per variant: optimized code and type feedback belong to a function.
  const raw = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await gp.acquire();
      await gp.release(r);
    }
  };
  const inScopeLoop = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const l = await pool.acquire();
      await l.release();
    }
  };
  const inScope = (n: number) => scope.run(() => inScopeLoop(n));
  const perTask = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await withScope(async () => {
        const l = await pool.acquire();
        await l.release();
      });
    }
  };
  const rawPerTask = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await withScope(async () => {
        const r = await gp.acquire();
        await gp.release(r);
      });
    }
  };
  const unscoped = async (n: number) => {
    noScope();
    for (let i = 0; i < n; i++) {
      const l = await pool.acquire();
      await l.release();
    }
  };

  const v = (name: string, mode: SitesMode, run: Variant['run']): Variant => ({ name: `${name} [sites ${mode}]`, setup: sites(mode), run });
  const samples = await measure(
    [
      { name: 'generic-pool acquire + release', run: raw },
      v('custodian, one long-lived scope', 'off', inScope),
      v('custodian, one long-lived scope', 'sampled', inScope),
      v('custodian, one long-lived scope', 'always', inScope),
      v('custodian, withScope per task', 'off', perTask),
      v('custodian, withScope per task', 'always', perTask),
      { name: 'generic-pool inside withScope per task', setup: sites('off'), run: rawPerTask },
      v('custodian, no scope', 'off', unscoped),
      v('custodian, no scope', 'always', unscoped),
    ],
    options,
  );
  const [gpS, scOff, scSampled, scAlways, taskOff, taskAlways, gpTask, unOff, unAlways] = samples;
  const g = 'pool seq';
  const target = { maxRatio: 1.5 };
  const rows = [
    compareRow(g, 'acquire + release in a scope, sites off (target row)', scOff!, gpS!, target, 'vs raw generic-pool'),
    compareRow(g, 'acquire + release in a scope, sites sampled (prod default)', scSampled!, gpS!, target),
    compareRow(g, 'acquire + release in a scope, sites always (dev default)', scAlways!, gpS!, undefined, 'a stack captured per acquire'),
    compareRow(g, 'withScope per task + acquire + release, sites off', taskOff!, gpS!),
    compareRow(g, 'withScope per task + acquire + release, sites always', taskAlways!, gpS!),
    compareRow(
      g,
      'withScope per task: custodian vs generic-pool, sites off',
      taskOff!,
      gpTask!,
      undefined,
      'both inside the same withScope',
    ),
    compareRow(g, 'no scope (unscoped lease), sites off', unOff!, gpS!, undefined, 'FinalizationRegistry backstop'),
    compareRow(g, 'no scope (unscoped lease), sites always', unAlways!, gpS!, undefined, 'site formatted at acquire'),
  ];
  // Right after a full GC, with no lease, waiter or scope alive (see src/util/shapes.ts).
  const [gpAfter, taskAfter] = await afterCollection(
    [
      { name: 'generic-pool acquire + release, after a full GC', run: raw },
      v('custodian, withScope per task, after a full GC', 'off', perTask),
    ],
    options.rounds ?? 11,
    AFTER_GC_CALLS,
  );
  rows.push(
    compareRow(g, `withScope per task + acquire + release, sites off, the ${AFTER_GC_CALLS} calls after a full GC`, taskAfter!, gpAfter!),
  );
  await scope.close();
  await pool.close();
  await closeGeneric(gp);
  return rows;
}

// --- 2. contended ----------------------------------------------------------------------------------

/** Runs `n` operations spread over WORKERS concurrent workers; `worker(take)` loops while `take()`. */
async function spread(n: number, worker: (take: () => boolean) => Promise<void>): Promise<void> {
  let left = n;
  const take = () => left-- > 0;
  const running: Promise<void>[] = [];
  for (let w = 0; w < WORKERS; w++) running.push(worker(take));
  await Promise.all(running);
}

async function contended(options: MeasureOptions): Promise<Row[]> {
  const gp = rawGenericPool();
  const pool = custodianPool('bench contended');

  const rawWorker = async (take: () => boolean) => {
    while (take()) {
      const r = await gp.acquire();
      await null;
      await gp.release(r);
    }
  };
  const scopedWorker = (take: () => boolean) =>
    withScope(async () => {
      while (take()) {
        const l = await pool.acquire();
        await null;
        await l.release();
      }
    });
  const samples = await measure(
    [
      { name: `generic-pool, ${WORKERS} workers on ${MAX}`, run: (n) => spread(n, rawWorker) },
      ...(['off', 'always'] as const).map((mode) => ({
        name: `custodian, ${WORKERS} workers on ${MAX}, scope each [sites ${mode}]`,
        setup: sites(mode),
        run: (n: number) => spread(n, scopedWorker),
      })),
    ],
    options,
  );
  const [gpS, off, always] = samples;
  const stats = pool.stats();
  if (stats.borrowed !== 0 || stats.pending !== 0 || stats.size > MAX)
    throw new Error(`contended pool left in a bad state: ${JSON.stringify(stats)}`);
  const g = 'pool contended';
  const rows = [
    compareRow(g, `${WORKERS} workers / ${MAX} resources, scope per worker, sites off (target row)`, off!, gpS!, { maxRatio: 1.5 }),
    compareRow(g, `${WORKERS} workers / ${MAX} resources, scope per worker, sites always`, always!, gpS!),
  ];
  await pool.close();
  await closeGeneric(gp);
  return rows;
}

// --- 3. mysql2 ----------------------------------------------------------------------------------------

async function mysqlBench(options: MeasureOptions, note: (line: string) => void): Promise<Row[]> {
  const log = options.log ?? (() => {});
  const server = await benchMysql('pool mysql2', log, note);
  if (Array.isArray(server)) return server;
  const { mysql, config, where, skip } = server;

  const native = mysql.createPool({ ...config, connectionLimit: MAX });
  const gp = genericPool.createPool<MysqlPromise.Connection>(
    { create: () => mysql.createConnection(config), destroy: (c) => c.end() },
    { max: MAX },
  );
  const pool = createPool<MysqlPromise.Connection>(
    { create: () => mysql.createConnection(config), destroy: (c) => c.end() },
    { name: 'bench mysql', kind: 'mysql connection', max: MAX },
  );
  const scope = openScope({ name: 'pool bench mysql' });
  try {
    const nativeLoop = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const c = await native.getConnection();
        c.release();
      }
    };
    const gpLoop = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const c = await gp.acquire();
        await gp.release(c);
      }
    };
    const custodianLoop = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const l = await pool.acquire();
        await l.release();
      }
    };
    const samples = await measure(
      [
        { name: 'mysql2 pool getConnection + release', run: nativeLoop },
        { name: 'generic-pool of mysql2 connections', run: gpLoop },
        ...(['off', 'always'] as const).map((mode) => ({
          name: `custodian of mysql2 connections, in scope [sites ${mode}]`,
          setup: sites(mode),
          run: (n: number) => scope.run(() => custodianLoop(n)),
        })),
      ],
      options,
    );
    const [nativeS, gpS, off, always] = samples;
    const g = 'pool mysql2';
    return [
      compareRow(g, 'generic-pool (mysql2 connections) vs mysql2 pool', gpS!, nativeS!),
      compareRow(g, 'custodian in a scope, sites off, vs mysql2 pool', off!, nativeS!),
      compareRow(g, 'custodian in a scope, sites always, vs mysql2 pool', always!, nativeS!),
      compareRow(g, 'custodian in a scope, sites off, vs generic-pool', off!, gpS!, undefined, 'same mysql2 connections'),
    ];
  } catch (error) {
    return skip(`failed while measuring against ${where} (${errorMessage(error)})`);
  } finally {
    await scope.close().catch(() => {});
    await pool.close({ timeout: 2_000 }).catch(() => {});
    await closeGeneric(gp).catch(() => {});
    await native.end().catch(() => {});
  }
}

// --- 4. memory ---------------------------------------------------------------------------------------

async function memory(iterations: number, log: (line: string) => void): Promise<Row[]> {
  const pool = custodianPool('bench memory');
  const scope = openScope({ name: 'pool bench memory' });
  const rows: Row[] = [];
  try {
    const loop = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const l = await pool.acquire();
        await l.release();
      }
    };
    const perTask = async (n: number) => {
      for (let i = 0; i < n; i++) {
        await withScope(async () => {
          const l = await pool.acquire();
          await l.release();
        });
      }
    };
    const unscoped = (n: number) => {
      noScope();
      return loop(n);
    };
    const tests: [string, SitesMode, (n: number) => Promise<void>][] = [
      ['pool acquire + release in one scope, sites always', 'always', (n) => scope.run(() => loop(n))],
      ['withScope + pool acquire + release, sites always', 'always', perTask],
      ['pool acquire + release with no scope, sites sampled', 'sampled', unscoped],
    ];
    // Let what the timed sets left behind go first (closed pools, sockets, code of functions no
    // longer run): freed during the first test, it showed up as a heap that shrank.
    for (let i = 0; i < 3; i++) await settledHeap();
    for (const [name, mode, run] of tests) {
      sites(mode)();
      // A longer warm-up than flat()'s own: code optimized during the measured loop (a few hundred
      // KB) would otherwise show up as growth when the iteration count is small (--quick).
      await run(WARM_UP);
      rows.push(await flat(name, 'op', iterations, run, log));
    }
    const stats = pool.stats();
    if (stats.borrowed !== 0 || stats.size !== 1) throw new Error(`memory pool left in an unexpected state: ${JSON.stringify(stats)}`);
  } finally {
    await scope.close();
    await pool.close();
  }
  return rows;
}
