/**
 * custodian/mysql against the real MariaDB at 127.0.0.1:3306 (root, no password, database `test`).
 * What the server sees is checked from a connection of the test's own (`admin`): rows committed or
 * not, PROCESSLIST, CONNECTION_ID(). The `// site:NAME` markers are the lines reports must name.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { inspect as utilInspect } from 'node:util';
import type { Connection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { createMysql, MysqlTransactionError, type Mysql } from '../../adapters/mysql/index.js';
import { currentScope, inspect, PoolCreateError, withScope } from '../../src/index.js';
import { collectReports, rejectionOf, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { closedPort, closeMysql, connectMysql, describeWithServer, MYSQL, probeMysql, RUN_ID, settle } from '../integration/servers.js';

const server = await probeMysql();
const siteOf = sitesIn(import.meta.url);
const table = `custodian_my_${RUN_ID}`;
useCleanCustodian();

let admin: Connection | undefined;
const adminConn = (): Connection => {
  if (admin === undefined) throw new Error('no admin connection');
  return admin;
};
/** Clients made by a test, closed after it whatever happens. */
const opened: Mysql[] = [];
function client(options: Parameters<typeof createMysql>[0] = {}): Mysql {
  const base = typeof options === 'string' ? options : { ...MYSQL, name: `my-${opened.length}`, ...options };
  const db = createMysql(base);
  opened.push(db);
  return db;
}

async function scalar(conn: Connection | Mysql, sql: string, params?: unknown[]): Promise<unknown> {
  const [rows] = await (conn as Mysql).query<RowDataPacket[]>(sql, params);
  const row = rows[0];
  if (row === undefined) throw new Error(`no row from ${sql}`);
  return Object.values(row)[0];
}
const ids = async () => {
  const [rows] = await adminConn().query<RowDataPacket[]>(`SELECT id FROM \`${table}\` ORDER BY id`);
  return rows.map((r) => Number(r['id']));
};

describeWithServer(server, `custodian/mysql against MariaDB (${MYSQL.host}:${MYSQL.port})`, () => {
  beforeAll(async () => {
    if (!server.up) return;
    admin = await connectMysql();
    await admin.query(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL) ENGINE=InnoDB`);
  });
  afterAll(async () => {
    await Promise.all(opened.splice(0).map((db) => db.close()));
    if (admin === undefined) return;
    await admin.query(`DROP TABLE IF EXISTS \`${table}\``);
    await closeMysql(admin);
  });

  const cleanUp = async () => {
    await Promise.all(opened.splice(0).map((db) => db.close()));
    await adminConn().query(`DELETE FROM \`${table}\``);
  };

  describe('statements borrow a connection each and give it back at once', () => {
    it("keeps mysql2's result types, generics included", async () => {
      const db = client();
      const [rows, fields] = await db.query<RowDataPacket[]>('SELECT ? + 1 AS n', [41]);
      expectTypeOf(rows).toEqualTypeOf<RowDataPacket[]>();
      expect(rows[0]?.['n']).toBe(42);
      expect(fields[0]?.name).toBe('n');
      const [ok] = await db.execute<ResultSetHeader>(`INSERT INTO \`${table}\` (id, note) VALUES (?, ?)`, [1, 'x']);
      expectTypeOf(ok).toEqualTypeOf<ResultSetHeader>();
      expect(ok.affectedRows).toBe(1);
      expect(db.stats()).toMatchObject({ borrowed: 0, available: 1 });
      await cleanUp();
    });

    it('50 concurrent scopes on a pool of 2, two queries each with 50 ms between, never wait for a connection held across the sleep', async () => {
      // A connection held across the sleep would queue 48 tasks behind 50 ms holds: far past this timeout.
      const db = client({ pool: { max: 2, acquireTimeoutMs: 400 } });
      let borrowedDuringSleeps = 0;
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          withScope(async () => {
            const a = Number(await scalar(db, 'SELECT ?', [i]));
            await sleep(50);
            borrowedDuringSleeps = Math.max(borrowedDuringSleeps, i === 25 ? db.stats().borrowed : 0);
            const b = Number(await scalar(db, 'SELECT ? * 2', [i]));
            return a + b;
          }),
        ),
      );
      expect(results).toEqual(Array.from({ length: 50 }, (_, i) => 3 * i));
      expect(db.stats().size).toBeLessThanOrEqual(2);
      expect(borrowedDuringSleeps).toBeLessThanOrEqual(2);
      await cleanUp();
    });

    it('a waiter resumes in its own async context, not the releaser’s', async () => {
      const db = client({ pool: { max: 1 } });
      const appStore = new AsyncLocalStorage<number>();
      const seen = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          appStore.run(i, () =>
            withScope(
              async (scope) => {
                await db.query('SELECT SLEEP(0.002)');
                return { store: appStore.getStore(), same: currentScope() === scope };
              },
              { name: `task ${i}` },
            ),
          ),
        ),
      );
      expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => ({ store: i, same: true })));
      await cleanUp();
    });
  });

  describe('transactions', () => {
    it('transaction(fn) commits on success and rolls back on error, rethrowing the error untouched', async () => {
      const db = client();
      const answer = await db.transaction(async (tx) => {
        await tx.query(`INSERT INTO \`${table}\` (id, note) VALUES (1, 'committed')`);
        return 'done';
      });
      expect(answer).toBe('done');
      const boom = new Error('boom');
      const error = await rejectionOf(
        db.transaction(async (tx) => {
          await tx.execute(`INSERT INTO \`${table}\` (id, note) VALUES (?, ?)`, [2, 'rolled back']);
          expect(await scalar(tx as unknown as Mysql, `SELECT COUNT(*) FROM \`${table}\``)).toBe(2);
          throw boom;
        }),
      );
      expect(error).toBe(boom);
      expect(await ids()).toEqual([1]); // seen from another connection
      await cleanUp();
    });

    it('begin(): a transaction neither committed nor rolled back is rolled back at dispose and reported as an unfinished mysql transaction', async () => {
      allowLeaks(); // the unfinished transaction is the subject
      const db = client();
      const { reports, stop } = collectReports();
      await withScope(async () => {
        await using tx = await db.begin(); // site:begin
        await tx.query(`INSERT INTO \`${table}\` (id, note) VALUES (3, 'left open')`);
        await sleep(20);
      });
      stop();
      expect(await ids()).toEqual([]);
      const unfinished = reports.filter((r) => r.type === 'unfinished');
      expect(unfinished).toHaveLength(1);
      const report = unfinished[0];
      if (report?.type !== 'unfinished') throw new Error('no report');
      expect(report.resource.kind).toBe('mysql transaction');
      expect(report.resource.site).toBe(siteOf('begin', 'begin'));
      expect(report.resource.heldMs).toBeGreaterThanOrEqual(15);
      expect(report.message).toContain('transaction left open');
      expect(report.message).toContain(siteOf('begin', 'begin'));
      expect(db.stats()).toMatchObject({ borrowed: 0 });
      await cleanUp();
    });

    it('begin(): commit() keeps the rows, rollback() drops them, and the handle refuses statements afterwards', async () => {
      const db = client();
      const tx = await db.begin({ isolationLevel: 'READ COMMITTED' });
      await tx.query(`INSERT INTO \`${table}\` (id, note) VALUES (4, 'kept')`);
      await tx.commit();
      expect(tx.state).toBe('committed');
      await expect(tx.query('SELECT 1')).rejects.toBeInstanceOf(MysqlTransactionError);
      const tx2 = await db.begin();
      await tx2.query(`INSERT INTO \`${table}\` (id, note) VALUES (5, 'dropped')`);
      await tx2.rollback();
      expect(await ids()).toEqual([4]);
      await cleanUp();
    });

    it('a forgotten transaction in a scope is reclaimed at scope end: rolled back, reported at the line that began it', async () => {
      allowLeaks();
      const db = client();
      const { reports, stop } = collectReports();
      const kept: unknown[] = [];
      await withScope(async () => {
        const tx = await db.begin(); // site:forgotten
        await tx.query(`INSERT INTO \`${table}\` (id, note) VALUES (6, 'forgotten')`);
        kept.push(tx);
      });
      stop();
      expect(await ids()).toEqual([]);
      const unreleased = reports.find((r) => r.type === 'unreleased');
      if (unreleased?.type !== 'unreleased') throw new Error('no unreleased report');
      expect(unreleased.resources.map((r) => [r.kind, r.site])).toEqual([['mysql transaction', siteOf('forgotten', 'begin')]]);
      expect(reports.some((r) => r.type === 'unfinished' && r.resource.site === siteOf('forgotten', 'begin'))).toBe(true);
      expect(db.stats()).toMatchObject({ borrowed: 0 });
      await cleanUp();
    });

    it('nested: tx.transaction(fn) is a savepoint; its failure undoes only its own statements', async () => {
      const db = client();
      await db.transaction(async (tx) => {
        await tx.query(`INSERT INTO \`${table}\` (id, note) VALUES (10, 'outer')`);
        await tx.transaction(async (inner) => {
          await inner.query(`INSERT INTO \`${table}\` (id, note) VALUES (11, 'inner kept')`);
        });
        await expect(
          tx.transaction(async (inner) => {
            await inner.query(`INSERT INTO \`${table}\` (id, note) VALUES (12, 'inner undone')`);
            throw new Error('inner fails');
          }),
        ).rejects.toThrow('inner fails');
        await expect(tx.transaction(async () => tx.commit())).rejects.toBeInstanceOf(MysqlTransactionError);
      });
      expect(await ids()).toEqual([10, 11]);
      await cleanUp();
    });
  });
});

void utilInspect;
void inspect;
void PoolCreateError;
void closedPort;
void settle;
