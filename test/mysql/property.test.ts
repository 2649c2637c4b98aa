/**
 * The invariant of reset 'dirty': whatever mix of statements, leases and transactions a borrower
 * runs, the next borrower of the connection sees a clean session. Checked two ways: on the
 * classifier alone (a statement that touches the session is never "plain"), and against MariaDB
 * with random programs on a pool of one connection.
 */
import fc from 'fast-check';
import type { RowDataPacket } from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { createMysql, type Mysql } from '../../adapters/mysql/index.js';
import { isPlain } from '../../adapters/mysql/plain.js';
import { PROPERTY_RUNS } from '../helpers.js';
import { describeWithServer, MYSQL, probeMysql, RUN_ID } from '../integration/servers.js';

const PLAIN = [
  'SELECT 1',
  'select a from t where b = ?',
  'INSERT INTO t (a) VALUES (?)',
  'UPDATE t SET a = 1',
  'DELETE FROM t',
  '(SELECT 1)',
  'WITH x AS (SELECT 1) SELECT * FROM x',
];
const TOUCHES = [
  '@v := 1',
  '@@SESSION.sql_mode',
  "GET_LOCK('x', 0)",
  'LOCK IN SHARE MODE',
  'TEMPORARY',
  'LAST_INSERT_ID(5)',
  '; SET @a = 1',
  'SESSION',
];

describe('the plain-statement classifier', () => {
  it('never calls a statement plain once it touches the session, wherever the fragment sits', () => {
    fc.assert(
      fc.property(fc.constantFrom(...PLAIN), fc.constantFrom(...TOUCHES), fc.nat(), fc.boolean(), (base, fragment, at, lower) => {
        const words = base.split(' ');
        const i = 1 + (at % words.length); // after the leading keyword
        const sql = [...words.slice(0, i), lower ? fragment.toLowerCase() : fragment, ...words.slice(i)].join(' ');
        expect(isPlain(sql)).toBe(false);
        expect(isPlain({ sql })).toBe(false);
      }),
      { numRuns: PROPERTY_RUNS },
    );
  });

  it('calls plain data statements plain, and anything else not', () => {
    for (const sql of PLAIN) expect(isPlain(sql)).toBe(true);
    for (const sql of [
      'SET @a = 1',
      'START TRANSACTION',
      'BEGIN',
      'CALL p()',
      'USE test',
      'SET autocommit = 0',
      'CREATE TEMPORARY TABLE t (a INT)',
      'DO 1',
      '',
      42,
      null,
    ]) {
      expect(isPlain(sql)).toBe(false);
    }
  });
});

const server = await probeMysql();
const lock = `custodian_prop_${RUN_ID}`;

/** What a borrower may do, in the ways it may do it. */
const ops = {
  plain: (db: Mysql) => db.query('SELECT 1'),
  setVar: (db: Mysql) => db.query("SET @v = 'dirty'"),
  selectAssign: (db: Mysql) => db.query("SELECT @v := 'dirty'"),
  timeZone: (db: Mysql) => db.query("SET time_zone = '+07:00'"),
  getLock: (db: Mysql) => db.query('SELECT GET_LOCK(?, 0)', [lock]),
  tempTable: (db: Mysql) => db.query('CREATE TEMPORARY TABLE IF NOT EXISTS prop_tmp (a INT)'),
  openTx: (db: Mysql) => db.query('START TRANSACTION'),
  leaseVar: async (db: Mysql) => {
    await using lease = await db.acquire();
    await lease.value.query("SET @v = 'lease'");
  },
  leaseTx: async (db: Mysql) => {
    await using lease = await db.acquire();
    await lease.value.query('START TRANSACTION');
  },
  txVar: (db: Mysql) => db.transaction((tx) => tx.query("SET @v = 'tx'")),
  txPlain: (db: Mysql) => db.transaction((tx) => tx.query('SELECT 1')),
} satisfies Record<string, (db: Mysql) => Promise<unknown>>;

const dbs: Mysql[] = [];
afterAll(() => Promise.all(dbs.map((db) => db.close())));

describeWithServer(server, "reset 'dirty' against MariaDB", () => {
  it('after any program of statements, leases and transactions, the next borrower of the one connection sees a clean session', async () => {
    const db = createMysql({ ...MYSQL, name: 'property', pool: { max: 1 }, session: { time_zone: '+00:00' } });
    dbs.push(db);
    const [first] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    const id = first[0]?.['id'];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(...(Object.keys(ops) as (keyof typeof ops)[])), { minLength: 1, maxLength: 6 }),
        async (program) => {
          for (const op of program) await ops[op](db);
          // The probe is plain: it gets the connection with no reset of its own before it.
          const [rows] = await db.query<RowDataPacket[]>(
            'SELECT CONNECTION_ID() AS id, @v AS v, @@time_zone AS tz, IS_USED_LOCK(?) AS lk, @@in_transaction AS tx',
            [lock],
          );
          expect(rows[0]).toEqual({ id, v: null, tz: '+00:00', lk: null, tx: 0 });
          // A temporary table is visible to its own session only: ask for it by name.
          const tmp = await db.query('SELECT COUNT(*) FROM prop_tmp').then(
            () => 'still there',
            (error: { code?: string }) => error.code,
          );
          expect(tmp).toBe('ER_NO_SUCH_TABLE');
        },
      ),
      { numRuns: process.env['CI'] ? 60 : 25 },
    );
  });
});
