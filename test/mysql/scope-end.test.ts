/**
 * A scope that ends (normally) while one of its transactions is between "connection acquired" and
 * "START TRANSACTION answered", or while one of its statements is still running on the server.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { createMysql, MysqlTransactionError, type Mysql, type MysqlTransaction } from '../../adapters/mysql/index.js';
import { withScope } from '../../src/index.js';
import { collectReports, sleep, useCleanCustodian } from '../helpers.js';
import { closeMysql, connectMysql, describeWithServer, MYSQL, probeMysql, RUN_ID, settle } from '../integration/servers.js';

const server = await probeMysql();
const table = `scope_end_${RUN_ID}`;
useCleanCustodian({ leaks: 'reclaim' });

let admin: Connection;
const opened: Mysql[] = [];
const client = (o: Parameters<typeof createMysql>[0] & object = {}) => {
  const db = createMysql({ ...MYSQL, name: `scope-end-${opened.length}`, ...o });
  opened.push(db);
  return db;
};

describeWithServer(server, 'custodian/mysql: a scope that ends around a transaction or a statement it did not await', () => {
  beforeAll(async () => {
    admin = await connectMysql();
    await admin.query(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await Promise.all(opened.map((db) => db.close({ timeout: 1000 })));
    await admin.query(`DROP TABLE IF EXISTS \`${table}\``);
    await closeMysql(admin);
  });

  it('a scope that ends while its begin() is waiting for START TRANSACTION does not leave the transaction running on a pooled connection', async () => {
    allowLeaks();
    const db = client({ pool: { max: 1 } });
    await db.query('SELECT 1'); // one warm connection: the next acquire resolves at once
    let late: MysqlTransaction | undefined;
    let lateError: unknown;
    await withScope(async () => {
      // begin() started, not awaited: the scope ends while START TRANSACTION is in flight.
      db.begin().then(
        (tx) => (late = tx),
        (e: unknown) => (lateError = e),
      );
      await new Promise((r) => setImmediate(r)); // the acquire resolves, START TRANSACTION is sent
    });
    await sleep(100);
    // begin() rejects, saying why; the connection START TRANSACTION was sent on is destroyed.
    expect(late).toBeUndefined();
    expect(lateError).toBeInstanceOf(MysqlTransactionError);
    expect(String(lateError)).toContain('ended before START TRANSACTION had answered');
    const [rows] = await db.query<RowDataPacket[]>('SELECT @@in_transaction AS t');
    expect(Number(rows[0]?.['t'])).toBe(0);
    // (the query's own reset runs behind its answer: wait for it)
    await settle(
      async () => db.stats().borrowed,
      (n) => n === 0,
    );
    expect(db.stats()).toMatchObject({ borrowed: 0, pending: 0 });
  });

  it('db.transaction(fn) started in a scope that ends: its statements never run on a connection the pool lent to another task', async () => {
    allowLeaks();
    const db = client({ pool: { max: 1 } });
    await db.query('SELECT 1');
    let outcome: unknown = 'pending';
    await withScope(async () => {
      db.transaction(async (tx) => {
        await sleep(50);
        await tx.query(`INSERT INTO \`${table}\` (id) VALUES (1)`);
        await sleep(200);
        // rolled back in the end: nothing should be committed
        throw new Error('roll me back');
      }).then(
        () => (outcome = 'resolved'),
        (e: unknown) => (outcome = e),
      );
      await new Promise((r) => setImmediate(r));
    });
    // Another task borrows the (only) connection meanwhile.
    await sleep(100);
    const [mine] = await db.query<RowDataPacket[]>(`SELECT @@in_transaction AS t, (SELECT COUNT(*) FROM \`${table}\`) AS n`);
    await sleep(300);
    expect(Number(mine[0]?.['t'])).toBe(0);
    expect(Number(mine[0]?.['n'])).toBe(0);
    expect(outcome).toBeInstanceOf(MysqlTransactionError); // fn never ran
    const [[count]] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${table}\``);
    expect(Number(count?.['n'])).toBe(0);
  });

  it('a statement left running when its scope ends: the pool does not lend its connection (mid-statement) to the next borrower', async () => {
    allowLeaks();
    const db = client({ pool: { max: 1 } });
    const id = Number(Object.values((await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id'))[0][0] ?? {})[0]);
    const forgotten: { p?: Promise<unknown> } = {};
    await withScope(async () => {
      forgotten.p = db.query('SELECT SLEEP(1)');
      forgotten.p.catch(() => {});
      await sleep(20);
    });
    const t0 = performance.now();
    const [rows] = await db.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    const waited = performance.now() - t0;
    // The busy connection was destroyed (its thread killed): the next borrower gets a new one at once.
    expect(waited).toBeLessThan(500);
    expect(Number(rows[0]?.['id'])).not.toBe(id);
    await expect(forgotten.p).rejects.toMatchObject({ code: 'PROTOCOL_CONNECTION_LOST' });
  });

  it('a session-changing statement left running when its scope ends: the next borrower does not see its @variable', async () => {
    allowLeaks();
    const db = client({ pool: { max: 1 } });
    await db.query('SELECT 1');
    const { reports, stop } = collectReports();
    await withScope(async () => {
      db.query('SELECT SLEEP(0.3), @leak := 42').catch(() => {});
      await sleep(20);
    });
    stop();
    const [rows] = await db.query<RowDataPacket[]>('SELECT @leak AS v');
    expect(rows[0]?.['v']).toBeNull();
    // Reported as the statement's connection left behind, at the line of the db.query() call.
    expect(reports.filter((r) => r.type === 'unreleased')).toHaveLength(1);
  });
});
