/**
 * custodian/mysql against mysql2's own pool, in the same run, on the MariaDB at 127.0.0.1:3306
 * (BENCH_MYSQL_HOST / BENCH_MYSQL_PORT override; skipped with a note when unreachable). Both arms
 * run with AsyncLocalStorage enabled (custodian is loaded) and pools of 10 connections.
 *
 * 1. `db.query('SELECT 1')` vs `pool.query('SELECT 1')`, one at a time and 100 concurrent callers.
 *    custodian runs inside a scope, with sites 'sampled' (the production default) and 'always'
 *    (the default elsewhere: a stack captured per statement). Target: >= 0.95x mysql2's
 *    throughput (ns/op ratio <= 1.053) on the 'sampled' rows.
 * 2. `db.transaction(tx => tx.query(INSERT))` vs the hand-written getConnection /
 *    beginTransaction / query / commit / release on mysql2's pool. Same target.
 * 3. The reset's cost per release: `reset: 'always'` vs `'dirty'` on `SELECT 1` (the difference
 *    is COM_RESET_CONNECTION, and the session set-up's SET when one is due), and mysql2's pool with
 *    its `resetOnRelease` (COM_RESET_CONNECTION only) against mysql2's pool without.
 */
import type { createMysql as CreateMysql, Mysql } from '../adapters/mysql/index.js';
import { openScope } from '../src/index.js';
import { compareRow, measure, type MeasureOptions, type Row } from './harness.js';
import { benchMysql, errorMessage } from './mysql-server.js';
import { sites } from './scope.bench.js';

const MAX = 10;
const CONCURRENCY = 100;
/** ns/op ratio for ">= 0.95x the throughput". */
const TARGET = { maxRatio: 1 / 0.95 };

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

export async function mysqlBench(options: MeasureOptions, note: (line: string) => void): Promise<Row[]> {
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
    // 1. SELECT 1, one at a time and 100 concurrent.
    for (const [label, drive] of [
      ['1 at a time', sequential],
      [`${CONCURRENCY} concurrent`, (op: () => Promise<unknown>) => (n: number) => concurrently(n, CONCURRENCY, op)],
    ] as const) {
      log(`  SELECT 1, ${label}`);
      const [raw, sampled, all] = await measure(
        [
          { name: `mysql2 pool.query, ${label}`, run: drive(nativeSelect) },
          { name: `custodian db.query, ${label} [sites sampled]`, setup: sites('sampled'), run: scoped(drive(custodianSelect)) },
          { name: `custodian db.query, ${label} [sites always]`, setup: sites('always'), run: scoped(drive(custodianSelect)) },
        ],
        options,
      );
      const g = 'mysql query';
      rows.push(
        compareRow(g, `db.query('SELECT 1') ${label}, sites sampled, vs mysql2 pool.query`, sampled!, raw!, TARGET),
        compareRow(g, `db.query('SELECT 1') ${label}, sites always, vs mysql2 pool.query`, all!, raw!),
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
    const [rawTx, sampledTx, allTx] = await measure(
      [
        { name: 'mysql2 getConnection/begin/INSERT/commit/release', run: sequential(nativeTx) },
        { name: 'custodian db.transaction(INSERT) [sites sampled]', setup: sites('sampled'), run: scoped(sequential(custodianTx)) },
        { name: 'custodian db.transaction(INSERT) [sites always]', setup: sites('always'), run: scoped(sequential(custodianTx)) },
      ],
      options,
    );
    rows.push(
      compareRow('mysql transaction', 'db.transaction(INSERT), sites sampled, vs hand-written on mysql2 pool', sampledTx!, rawTx!, TARGET),
      compareRow('mysql transaction', 'db.transaction(INSERT), sites always, vs hand-written on mysql2 pool', allTx!, rawTx!),
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
