import type { Connection, RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { createMysql, MysqlTransactionError, type Mysql } from '../../adapters/mysql/index.js';
import { currentScope, withScope } from '../../src/index.js';
import { rejectionOf, sleep, useCleanCustodian } from '../helpers.js';
import { closeMysql, connectMysql, describeWithServer, MYSQL, probeMysql, RUN_ID, settle } from '../integration/servers.js';

const server = await probeMysql();
const table = `tx_edges_${RUN_ID}`;
useCleanCustodian({ leaks: 'reclaim' });
let admin: Connection;
const opened: Mysql[] = [];
const client = (o: Record<string, unknown> = {}) => {
  const db = createMysql({ ...MYSQL, name: `edges-${opened.length}`, ...o });
  opened.push(db);
  return db;
};
const ids = async () => {
  const [rows] = await admin.query<RowDataPacket[]>(`SELECT id FROM \`${table}\` ORDER BY id`);
  return rows.map((r) => Number(r['id']));
};

describeWithServer(server, 'custodian/mysql: transactions misused, statements cut off', () => {
  beforeAll(async () => {
    admin = await connectMysql();
    await admin.query(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY) ENGINE=InnoDB`);
  });
  beforeEach(async () => {
    if (admin !== undefined) await admin.query(`DELETE FROM \`${table}\``);
  });
  afterAll(async () => {
    await Promise.all(opened.map((db) => db.close({ timeout: 1000 })));
    await admin.query(`DROP TABLE IF EXISTS \`${table}\``);
    await closeMysql(admin);
  });

  it('a statement issued on a handle whose commit() is under way is refused (MysqlTransactionError), not run autocommitted after COMMIT', async () => {
    const db = client({ pool: { max: 1 } });
    const tx = await db.begin();
    await tx.query(`INSERT INTO \`${table}\` VALUES (1)`);
    const committing = tx.commit();
    const after = tx.query(`INSERT INTO \`${table}\` VALUES (2)`);
    const outcome = await after.then(
      () => 'ran',
      (e: unknown) => e,
    );
    await committing;
    expect(outcome).toBeInstanceOf(MysqlTransactionError);
    await admin.query(`DELETE FROM \`${table}\``);
  });

  it('commit() and rollback() called together: the state says what happened on the server', async () => {
    const db = client({ pool: { max: 1 } });
    const tx = await db.begin();
    await tx.query(`INSERT INTO \`${table}\` VALUES (3)`);
    const c = tx.commit();
    const r = tx.rollback();
    const [co, ro] = await Promise.allSettled([c, r]);
    // The first one called ends it; the second is refused, saying the transaction is ending.
    expect(co.status).toBe('fulfilled');
    expect(ro).toMatchObject({ status: 'rejected', reason: expect.any(MysqlTransactionError) as unknown });
    expect(await ids()).toEqual([3]);
    expect(tx.state).toBe('committed');
    await admin.query(`DELETE FROM \`${table}\``);
  });

  it('a transaction whose connection was killed between statements says so at its next use, and frees its connection', async () => {
    const db = client({ pool: { max: 1 } });
    const tx = await db.begin();
    const [[row]] = await tx.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
    await tx.query(`INSERT INTO \`${table}\` VALUES (5)`);
    await admin.query(`KILL ${Number(row?.['id'])}`);
    // mysql2 hears of it (its 'error'/'end'): the next statement is refused with the reason, not
    // mysql2's "Can't add new command when connection is in closed state".
    await sleep(100); // the client sees the server close the socket
    const error = await rejectionOf(tx.query('SELECT 1'));
    expect(error).toBeInstanceOf(MysqlTransactionError);
    expect(String(error)).toContain('connection was lost');
    expect(tx.state).toBe('failed');
    await settle(
      async () => db.stats().borrowed,
      (n) => n === 0,
    );
    expect(await ids()).toEqual([]);
    expect((await db.query<RowDataPacket[]>('SELECT 1 AS one'))[0][0]?.['one']).toBe(1);
  });

  it('scope.cancel() on a scope without timeout/signal during a statement: the statement runs to its end, then the connection is given back', async () => {
    allowLeaks();
    const db = client({ pool: { max: 1 } });
    await db.query('SELECT 1');
    const t0 = performance.now();
    const out: unknown = await withScope(async () => {
      const scope = currentScope();
      setTimeout(() => scope?.cancel(), 30);
      const [rows] = await db.query<RowDataPacket[]>('SELECT SLEEP(0.3) AS s');
      return rows[0]?.['s'];
    }).then(
      (v) => v,
      (e: unknown) => e,
    );
    expect(performance.now() - t0).toBeGreaterThan(250);
    expect(out).toMatchObject({ name: 'AbortError' }); // the cancellation is the answer
    expect(db.stats()).toMatchObject({ borrowed: 0 });
    expect((await db.query<RowDataPacket[]>('SELECT 1 AS one'))[0][0]?.['one']).toBe(1);
  });

  it('a client-side timeout inside a transaction: the transaction fails, nothing commits, the thread is killed', async () => {
    const db = client({ pool: { max: 1 } });
    const e = await rejectionOf(
      db.transaction(async (tx) => {
        await tx.query(`INSERT INTO \`${table}\` VALUES (4)`);
        await tx.query({ sql: 'SELECT SLEEP(3)', timeout: 50 });
      }),
    );
    expect((e as { code?: string }).code).toBe('PROTOCOL_SEQUENCE_TIMEOUT');
    await settle(
      async () => db.stats().kills,
      (n) => n === 1,
    );
    expect(db.stats()).toMatchObject({ borrowed: 0, kills: 1 });
    expect(await ids()).toEqual([]);
  });

  it('a huge result set cut off by a scope timeout: rejects at once, the thread is killed, the pool serves', async () => {
    const db = client({ pool: { max: 1 } });
    await db.query('SELECT 1');
    const t0 = performance.now();
    const e = await rejectionOf(withScope(() => db.query("SELECT seq, REPEAT('x', 200) AS pad FROM seq_1_to_5000000"), { timeout: 200 }));
    expect((e as Error).name).toBe('TimeoutError');
    const [rows] = await db.query<RowDataPacket[]>('SELECT 42 AS n');
    expect(rows[0]?.['n']).toBe(42);
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it('a large result set that completes (200k rows) leaves the pool consistent', async () => {
    const db = client({ pool: { max: 1 } });
    const [rows] = await db.query<RowDataPacket[]>('SELECT seq FROM seq_1_to_200000');
    expect(rows.length).toBe(200000);
    expect(db.stats()).toMatchObject({ borrowed: 0, size: 1 });
  });
});
