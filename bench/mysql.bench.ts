/**
 * custodian/mysql against mysql2's own pool, in the same run, on the MariaDB at 127.0.0.1:3306
 * (BENCH_MYSQL_HOST / BENCH_MYSQL_PORT override; skipped with a note when unreachable). Both arms
 * run with AsyncLocalStorage enabled (custodian is loaded) and pools of 10 connections.
 *
 * 1. `db.query('SELECT 1')` vs `pool.query('SELECT 1')`, one at a time and 100 concurrent callers.
 *    custodian runs inside a scope, with sites 'sampled' (the production default) and 'always'
 *    (the default elsewhere: a stack captured per statement). Target: >= 0.95x mysql2's
 *    throughput (ns/op ratio <= 1.053) on the 'sampled' rows. The 100 callers run at least
 *    STEADY statements each per call, so that what is measured is 100 callers at work; a burst
 *    row (100 callers starting at once, about 2 statements each, then draining) has no target.
 *    The 100 callers are measured twice: in this process, and with each client in a process of
 *    its own (apart.ts), where their target is judged (docs/mysql.md, Decisions).
 * 2. `db.transaction(tx => tx.query(INSERT))` vs the hand-written getConnection /
 *    beginTransaction / query / commit / release on mysql2's pool. Same target.
 *    An A/A row (mysql2 against itself, a second arm of the same calls) says how far this machine
 *    moves a ratio that should be 1: read the targets against it.
 * 3. The reset's cost per release: `reset: 'always'` vs `'dirty'` on `SELECT 1` (the difference
 *    is COM_RESET_CONNECTION, and the session set-up's SET when one is due), and mysql2's pool with
 *    its `resetOnRelease` (COM_RESET_CONNECTION only) against mysql2's pool without.
 */
import type { createMysql as CreateMysql, Mysql } from '../adapters/mysql/index.js';
import { fileURLToPath } from 'node:url';
import { openScope } from '../src/index.js';
import { apartKey, measureApart, serveApart } from './apart.js';
import { compareRow, measure, type MeasureOptions, type Row, type Variant } from './harness.js';
import { benchMysql, errorMessage, mysqlConfig } from './mysql-server.js';
import { sites } from './scope.bench.js';

const MAX = 10;
const CONCURRENCY = 100;
/**
 * Statements per caller in one call of the 100-concurrent driver, at the least. A fifth of a 40 ms
 * round is about 160 statements: 100 callers would start, do one or two each, and drain, and the
 * row would measure a burst (a queue of 90 filled and emptied per call) rather than 100 callers at
 * work. With 20 each, the start and the drain are a tenth of the call.
 */
const STEADY = 20;
/** ns/op ratio for ">= 0.95x the throughput". */
const TARGET = { maxRatio: 1 / 0.95 };
/**
 * Many short rounds rather than 11 of 100 ms: a statement's latency (client and server waking each
 * other on 2 cores) drifts more than CPU-bound work, and the ratios here are judged to within 5 %.
 * A ratio is the median of per-round ratios, and rounds measured closer together pair better: the
 * A/A row moved 0.84–1.19x with 11 rounds of 100 ms, 1.01–1.04x with 61 of 40 ms.
 */
const ROUNDS = { rounds: 61, roundMs: 40 };
/**
 * The target sets get four times the rounds. A per-round ratio here spreads about ±25 % (the
 * A/A rows' per-round ranges, 0.6–1.7x), so the median of 61 still moves from run to run: the
 * A/A rows of the six runs of 2026-12-07 read 0.93–1.09x, on a target 5 % away. Four times the
 * rounds halves the median's spread (it shrinks with the square root of their number).
 */
const TARGET_ROUNDS = { rounds: 241, roundMs: 40 };

/** Runs `op` n times spread over `workers` concurrent loops. */
async function concurrently(n: number, workers: number, op: () => Promise<unknown>): Promise<void> {
  let left = n;
  const worker = async () => {
    while (left > 0) {
      left--;
      await op();
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, n) }, worker));
}

export async function mysqlBench(given: MeasureOptions, note: (line: string) => void): Promise<Row[]> {
  // --quick keeps its few rounds: it is a smoke test.
  const quick = (given.rounds ?? 11) < 11;
  const options = quick ? given : { ...given, ...ROUNDS };
  const log = options.log ?? (() => {});
  const server = await benchMysql('mysql', log, note);
  if (Array.isArray(server)) return server;
  const { mysql, config, where, skip } = server;
  let createMysql: typeof CreateMysql;
  try {
    ({ createMysql } = await import('../adapters/mysql/index.js'));
  } catch (error) {
    return skip(`custodian/mysql could not be loaded (${errorMessage(error)})`);
  }

  const table = `custodian_bench_${process.pid.toString(36)}${Date.now().toString(36)}`;
  const native = mysql.createPool({ ...config, connectionLimit: MAX });
  const nativeReset = mysql.createPool({ ...config, connectionLimit: MAX, resetOnRelease: true });
  const dbs: Mysql[] = [];
  const make = (name: string, reset: 'always' | 'dirty') => {
    const db = createMysql({ ...config, name, reset, pool: { max: MAX } });
    dbs.push(db);
    return db;
  };
  const db = make('bench mysql', 'dirty');
  const always = make('bench mysql reset always', 'always');
  const scope = openScope({ name: 'mysql bench' });
  try {
    await native.query(`CREATE TABLE \`${table}\` (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(16) NOT NULL) ENGINE=InnoDB`);
    const insert = `INSERT INTO \`${table}\` (note) VALUES ('x')`;

    const sequential = (op: () => Promise<unknown>) => async (n: number) => {
      for (let i = 0; i < n; i++) await op();
    };
    const scoped = (run: (n: number) => Promise<void>) => (n: number) => scope.run(() => run(n));
    const nativeSelect = () => native.query('SELECT 1');
    const custodianSelect = () => db.query('SELECT 1');

    const rows: Row[] = [];
    /**
     * The target row in a set of its own: the baseline, custodian with sites 'sampled', and the
     * baseline again (the A/A row, the noise floor to read the target against). Sites 'always' in
     * a second set: its garbage (a stack per statement) would otherwise be collected in the
     * rounds of whatever ran after it.
     */
    const against = async (
      g: string,
      what: string,
      raw: Variant,
      ours: Variant,
      label: string,
      /** `undefined`: a row without a target (judged elsewhere). */
      target: typeof TARGET | undefined,
    ) => {
      const [base, sampled, again] = await measure(
        [raw, { ...ours, name: `${ours.name} [sites sampled]`, setup: sites('sampled') }, { ...raw, name: `${raw.name} (again: A/A)` }],
        quick ? options : { ...options, ...TARGET_ROUNDS },
      );
      const [base2, all] = await measure([raw, { ...ours, name: `${ours.name} [sites always]`, setup: sites('always') }], options);
      rows.push(
        compareRow(g, `A/A: ${label} vs itself (the noise floor)`, again!, base!),
        compareRow(g, `${what}, sites sampled, vs ${label}`, sampled!, base!, target),
        compareRow(g, `${what}, sites always, vs ${label}`, all!, base2!),
      );
    };

    // 1. SELECT 1, one at a time and 100 concurrent.
    const parallel = (op: () => Promise<unknown>) => (n: number) => concurrently(n, CONCURRENCY, op);
    const steady = quick ? undefined : CONCURRENCY * STEADY; // --quick is a smoke test: short calls
    // The 100 callers' target is judged with each client in its own process (below, and
    // docs/mysql.md, Decisions): in one process the two clients slow each other down.
    for (const [label, drive, minChunk, target] of [
      ['1 at a time', sequential, undefined, TARGET],
      [`${CONCURRENCY} concurrent`, parallel, steady, quick ? TARGET : undefined],
    ] as const) {
      log(`  SELECT 1, ${label}`);
      await against(
        'mysql query',
        `db.query('SELECT 1') ${label}`,
        { name: `mysql2 pool.query, ${label}`, run: drive(nativeSelect), minChunk },
        { name: `custodian db.query, ${label}`, run: scoped(drive(custodianSelect)), minChunk },
        'mysql2 pool.query',
        target,
      );
    }
    // The burst: calls of a fifth of a round, 100 callers doing one or two statements each.
    log(`  SELECT 1, ${CONCURRENCY} concurrent in bursts`);
    const [burstRaw, burstOurs] = await measure(
      [
        { name: `mysql2 pool.query, bursts of ${CONCURRENCY} callers`, run: parallel(nativeSelect) },
        {
          name: `custodian db.query, bursts of ${CONCURRENCY} callers [sites sampled]`,
          setup: sites('sampled'),
          run: scoped(parallel(custodianSelect)),
        },
      ],
      options,
    );
    rows.push(
      compareRow(
        'mysql query',
        `db.query('SELECT 1') in bursts of ${CONCURRENCY} callers (about 2 each), sites sampled, vs mysql2 pool.query`,
        burstOurs!,
        burstRaw!,
        undefined,
        'each call fills a queue of 90 and drains it',
      ),
    );

    // The 100 callers again, each client in a process of its own (see apart.ts): an application
    // runs one of the two, and in one process they slow each other down. Twelve generations of
    // children: one process can run 10 % slower than its twin for its whole life.
    if (!quick) {
      log(`  SELECT 1, ${CONCURRENCY} concurrent, each client in its own process`);
      const [apartRaw, apartOurs, apartAgain] = await measureApart(
        fileURLToPath(import.meta.url),
        [
          { name: `mysql2 pool.query, ${CONCURRENCY} concurrent`, key: 'mysql2' },
          { name: `custodian db.query, ${CONCURRENCY} concurrent [sites sampled]`, key: 'custodian' },
          { name: `mysql2 pool.query, ${CONCURRENCY} concurrent (again: A/A)`, key: 'mysql2' },
        ],
        { rounds: TARGET_ROUNDS.rounds, roundMs: TARGET_ROUNDS.roundMs, chunk: CONCURRENCY * STEADY, generations: 12, log },
      );
      rows.push(
        compareRow('mysql query', 'A/A: mysql2 pool.query vs itself, each in its own process', apartAgain!, apartRaw!),
        compareRow(
          'mysql query',
          `db.query('SELECT 1') ${CONCURRENCY} concurrent, sites sampled, vs mysql2 pool.query, each client in its own process`,
          apartOurs!,
          apartRaw!,
          TARGET,
          'as an application runs one of them',
        ),
      );
    }

    // 2. A transaction with one INSERT.
    log('  transaction with one INSERT');
    const nativeTx = async () => {
      const conn = await native.getConnection();
      try {
        await conn.beginTransaction();
        await conn.query(insert);
        await conn.commit();
      } catch (error) {
        await conn.rollback();
        throw error;
      } finally {
        conn.release();
      }
    };
    const custodianTx = () => db.transaction((tx) => tx.query(insert));
    await against(
      'mysql transaction',
      'db.transaction(INSERT)',
      { name: 'mysql2 getConnection/begin/INSERT/commit/release', run: sequential(nativeTx) },
      { name: 'custodian db.transaction(INSERT)', run: scoped(sequential(custodianTx)) },
      'hand-written on mysql2 pool',
      TARGET,
    );

    // 3. What a reset costs per release.
    log('  reset per release');
    const [dirty, reset, rawNoReset, rawReset] = await measure(
      [
        { name: "custodian SELECT 1, reset 'dirty' (none due)", setup: sites('sampled'), run: scoped(sequential(custodianSelect)) },
        { name: "custodian SELECT 1, reset 'always'", setup: sites('sampled'), run: scoped(sequential(() => always.query('SELECT 1'))) },
        { name: 'mysql2 pool.query SELECT 1', run: sequential(nativeSelect) },
        { name: 'mysql2 pool.query SELECT 1, resetOnRelease', run: sequential(() => nativeReset.query('SELECT 1')) },
      ],
      options,
    );
    rows.push(
      compareRow(
        'mysql reset',
        "reset 'always' vs 'dirty': COM_RESET_CONNECTION (+ SET when due) per release",
        reset!,
        dirty!,
        undefined,
        `${((reset!.median - dirty!.median) / 1000).toFixed(0)} µs per release; the answer does not wait for it`,
      ),
      compareRow('mysql reset', 'mysql2 resetOnRelease vs none (COM_RESET_CONNECTION only)', rawReset!, rawNoReset!),
      compareRow(
        'mysql reset',
        "custodian reset 'always' vs mysql2 resetOnRelease",
        reset!,
        rawReset!,
        undefined,
        'custodian also re-applies the charset and session set-up',
      ),
    );
    const s = always.stats();
    note(
      `mysql reset: ${s.resets} resets measured by db.stats(), mean ${(s.resetMeanMs * 1000).toFixed(0)} µs each (COM_RESET_CONNECTION, and the SET when one is due)`,
    );
    return rows;
  } catch (error) {
    return skip(`failed while measuring against ${where} (${errorMessage(error)})`);
  } finally {
    await native.query(`DROP TABLE IF EXISTS \`${table}\``).catch(() => {});
    await scope.close().catch(() => {});
    await Promise.all(dbs.map((d) => d.close({ timeout: 2_000 }).catch(() => {})));
    await native.end().catch(() => {});
    await nativeReset.end().catch(() => {});
  }
}

// --- a client in a process of its own (measureApart's children) ------------------------------------

const key = apartKey();
if (key !== undefined) serveApart(() => apartClient(key));

/**
 * One client, 100 callers at work, in this process alone. The custodian package is loaded and its
 * AsyncLocalStorage enabled in both, as when the two share a process.
 */
async function apartClient(which: string): Promise<{ run: (n: number) => Promise<void>; close: () => Promise<void> }> {
  const config = mysqlConfig();
  const scope = openScope({ name: `mysql bench ${which}` });
  scope.run(() => {}); // AsyncLocalStorage enabled, as in the suite's process
  if (which === 'custodian') {
    const { createMysql } = await import('../adapters/mysql/index.js');
    sites('sampled')();
    const db = createMysql({ ...config, name: 'bench mysql', reset: 'dirty', pool: { max: MAX } });
    return {
      run: (n) => scope.run(() => concurrently(n, CONCURRENCY, () => db.query('SELECT 1'))),
      close: async () => {
        await scope.close();
        await db.close();
      },
    };
  }
  const mysql = await import('mysql2/promise');
  const pool = mysql.createPool({ ...config, connectionLimit: MAX });
  return {
    run: (n) => concurrently(n, CONCURRENCY, () => pool.query('SELECT 1')),
    close: async () => {
      await scope.close();
      await pool.end();
    },
  };
}
