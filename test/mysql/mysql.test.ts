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
import { currentScope, inspect, PoolCreateError, ScopeClosedError, withScope } from '../../src/index.js';
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

    it("a failed statement rejects with mysql2's error, its fields intact and its stack at the caller's line; the connection is kept", async () => {
      const db = client({ pool: { max: 1 } });
      const id = await scalar(db, 'SELECT CONNECTION_ID()');
      const error = (await rejectionOf(db.query('SELEC 1'))) as Error & { code?: string; errno?: number; sqlMessage?: string }; // site:trace
      expect(error.code).toBe('ER_PARSE_ERROR');
      expect(error.errno).toBe(1064);
      expect(error.stack).toContain(siteOf('trace', 'query'));
      expect(await scalar(db, 'SELECT CONNECTION_ID()')).toBe(id);
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

    it("a failed statement in a transaction rejects with mysql2's error at the caller's line; the transaction stays open", async () => {
      const db = client();
      await db.transaction(async (tx) => {
        const error = (await rejectionOf(tx.query('SELEC 2'))) as Error & { code?: string }; // site:txtrace
        expect(error.code).toBe('ER_PARSE_ERROR');
        expect(error.stack).toContain(siteOf('txtrace', 'query'));
        expect(tx.state).toBe('open');
        await tx.query(`INSERT INTO \`${table}\` (id, note) VALUES (7, 'after the error')`);
      });
      expect(await ids()).toEqual([7]);
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

    it('begin() and transaction() from a task that already ended reject with ScopeClosedError, and borrow nothing', async () => {
      const db = client();
      // Code still running in the task's context after it ended: a timer, a callback.
      let inTask: <R>(fn: () => R) => R = (fn) => fn();
      await withScope(() => {
        inTask = AsyncLocalStorage.snapshot();
      });
      const late = () => inTask(() => db.begin());
      let pending: Promise<unknown> | undefined;
      expect(() => (pending = late())).not.toThrow(); // a rejection, not a throw
      await expect(pending).rejects.toBeInstanceOf(ScopeClosedError);
      await expect(inTask(() => db.transaction(() => 1))).rejects.toBeInstanceOf(ScopeClosedError);
      await expect(inTask(() => db.query('SELECT 1'))).rejects.toBeInstanceOf(ScopeClosedError);
      expect(db.stats()).toMatchObject({ size: 0, borrowed: 0 });
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
  describe('release resets session state for the next borrower', () => {
    /** Everything a borrower may leave on its connection. */
    const dirty = async (conn: Connection) => {
      await conn.query("SET @leftover = 'x', time_zone = '+05:00', NAMES latin1");
      await conn.query('CREATE TEMPORARY TABLE leftover_tmp (a INT)');
      await conn.query('SELECT GET_LOCK(?, 0)', [`custodian_lock_${RUN_ID}`]);
      await conn.query('START TRANSACTION');
      await conn.query(`INSERT INTO \`${table}\` (id, note) VALUES (20, 'uncommitted')`);
    };
    const view = async (db: Mysql) => {
      const lease = await db.acquire();
      try {
        const [rows] = await lease.value.query<RowDataPacket[]>(
          'SELECT CONNECTION_ID() AS id, @leftover AS v, @@in_transaction AS tx, IS_USED_LOCK(?) AS lk, @@time_zone AS tz, @@character_set_client AS cs',
          [`custodian_lock_${RUN_ID}`],
        );
        // A temporary table is visible to its own session only: ask for it by name.
        const tmp = await lease.value.query('SELECT COUNT(*) FROM leftover_tmp').then(
          () => 1,
          (error: { code?: string }) => (error.code === 'ER_NO_SUCH_TABLE' ? 0 : error.code),
        );
        return { ...rows[0], tmp } as Record<string, unknown>;
      } finally {
        await lease.release();
      }
    };

    it('the next borrower of the same connection (same CONNECTION_ID) sees no variable, temporary table, transaction or GET_LOCK, and the configured charset and time zone', async () => {
      const db = client({ pool: { max: 1 }, charset: 'UTF8MB4_GENERAL_CI', session: { time_zone: '+02:00' } });
      const before = await view(db);
      expect(before).toMatchObject({ v: null, tx: 0, lk: null, tz: '+02:00', cs: 'utf8mb4', tmp: 0 });
      {
        await using lease = await db.acquire();
        await dirty(lease.value);
        expect(await scalar(lease.value, 'SELECT @leftover')).toBe('x');
      }
      const after = await view(db);
      expect(after).toEqual({ ...before }); // same connection id too
      expect(await ids()).toEqual([]);
      expect(db.stats().resets).toBeGreaterThanOrEqual(1);
      await cleanUp();
    });

    it('with no session variables, the configured charset survives the reset too (on MariaDB, which restores it, without a SET)', async () => {
      const db = client({ pool: { max: 1 }, charset: 'LATIN1_SWEDISH_CI' });
      const charset = () => scalar(db, 'SELECT CONCAT(CONNECTION_ID(), " ", @@character_set_client, " ", @@collation_connection)');
      const before = await charset();
      expect(String(before)).toMatch(/ latin1 latin1_swedish_ci$/);
      {
        await using lease = await db.acquire();
        await lease.value.query('SET NAMES utf8mb4');
      }
      expect(await charset()).toBe(before);
      expect(db.stats().resets).toBeGreaterThanOrEqual(2); // after the lease, and after the first @@ query
      await cleanUp();
    });

    it("reset 'dirty' (default) skips plain statements and resets after one that touches the session; 'always' resets after every borrow; 'never' leaves session state to the next borrower", async () => {
      const dirtyDb = client({ pool: { max: 1 } });
      await dirtyDb.query('SELECT 1');
      await dirtyDb.execute(`INSERT INTO \`${table}\` (id, note) VALUES (?, ?)`, [30, 'plain']);
      await sleep(5);
      expect(dirtyDb.stats().resets).toBe(0);
      await dirtyDb.query("SET @x = 'session'");
      await settle(
        async () => dirtyDb.stats().resets,
        (n) => n === 1,
      );
      expect(await scalar(dirtyDb, 'SELECT @x')).toBe(null);
      expect(dirtyDb.stats().resets).toBe(1);

      const alwaysDb = client({ pool: { max: 1 }, reset: 'always' });
      await alwaysDb.query('SELECT 1');
      await alwaysDb.query('SELECT 1');
      await settle(
        async () => alwaysDb.stats().resets,
        (n) => n === 2,
      );
      expect(alwaysDb.stats().resets).toBe(2);

      const neverDb = client({ pool: { max: 1 }, reset: 'never' });
      await neverDb.query("SET @x = 'kept'");
      expect(await scalar(neverDb, 'SELECT @x')).toBe('kept');
      {
        await using lease = await neverDb.acquire();
        await lease.value.query('START TRANSACTION');
        await lease.value.query(`INSERT INTO \`${table}\` (id, note) VALUES (31, 'never: rolled back anyway')`);
      }
      expect(await scalar(neverDb, 'SELECT @@in_transaction')).toBe(0);
      expect(neverDb.stats().resets).toBe(0);
      expect(await ids()).toEqual([30]);
      await cleanUp();
    });

    it('onConnect runs on every new connection and again after each reset', async () => {
      let calls = 0;
      const db = client({
        pool: { max: 1 },
        onConnect: async (conn) => {
          calls++;
          await conn.query("SET @app = 'ready'");
        },
      });
      expect(await scalar(db, 'SELECT @app')).toBe('ready');
      {
        await using lease = await db.acquire();
        await lease.value.query("SET @app = 'changed'");
      }
      expect(await scalar(db, 'SELECT @app')).toBe('ready');
      await settle(
        async () => db.stats().borrowed,
        (n) => n === 0,
      );
      expect(calls).toBe(1 + db.stats().resets); // one connection: its connect, then every reset
      expect(db.stats().resets).toBeGreaterThanOrEqual(1);
      await cleanUp();
    });
  });

  describe('faults', () => {
    it('a connection killed mid-statement (KILL from another connection) gives the caller mysql2 error with its code, is destroyed, and the pool replaces it', async () => {
      const db = client({ pool: { max: 1 } });
      const first = Number(await scalar(db, 'SELECT CONNECTION_ID()'));
      const running = db.query('SELECT SLEEP(5)');
      running.catch(() => {}); // awaited below, after the kill
      await settle(
        () =>
          scalar(adminConn(), 'SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE ?', [first, '%SLEEP(5)%']),
        (n) => Number(n) === 1,
      );
      await adminConn().query(`KILL ${first}`);
      const error = (await rejectionOf(running)) as { code?: string; fatal?: boolean };
      expect(typeof error.code).toBe('string');
      expect(error.code).toMatch(/PROTOCOL_CONNECTION_LOST|ER_CONNECTION_KILLED|ECONNRESET/);
      const second = Number(await scalar(db, 'SELECT CONNECTION_ID()'));
      expect(second).not.toBe(first);
      expect(db.stats()).toMatchObject({ size: 1, borrowed: 0 });
      await cleanUp();
    });

    it('KILL QUERY from another connection fails the statement with ER_QUERY_INTERRUPTED and keeps the connection', async () => {
      const db = client({ pool: { max: 1 } });
      const id = Number(await scalar(db, 'SELECT CONNECTION_ID()'));
      const running = db.query('SELECT SLEEP(5)');
      running.catch(() => {}); // awaited below, after the kill
      await settle(
        () => scalar(adminConn(), 'SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE ?', [id, '%SLEEP(5)%']),
        (n) => Number(n) === 1,
      );
      await adminConn().query(`KILL QUERY ${id}`);
      // MariaDB answers an interrupted SLEEP() with 1 rather than an error; either way the connection is kept.
      const outcome = await running.then(
        ([rows]) => Object.values((rows as RowDataPacket[])[0] ?? {})[0],
        (error: { errno?: number }) => error.errno,
      );
      expect([1, 1317]).toContain(Number(outcome));
      expect(Number(await scalar(db, 'SELECT CONNECTION_ID()'))).toBe(id);
      await cleanUp();
    });

    it('a connection killed while idle is evicted when mysql2 reports it: the next statement gets a live one, never "closed state"', async () => {
      const db = client({ pool: { max: 2 } });
      const [a, b] = await Promise.all([
        scalar(db, 'SELECT CONNECTION_ID() + 0 * SLEEP(0.05)'),
        scalar(db, 'SELECT CONNECTION_ID() + 0 * SLEEP(0.05)'),
      ]);
      expect(db.stats().available).toBe(2);
      await adminConn().query(`KILL ${Number(a)}`);
      await adminConn().query(`KILL ${Number(b)}`);
      await settle(
        async () => db.stats().available,
        (n) => n === 0,
      );
      expect(db.stats().available).toBe(0);
      const id = Number(await scalar(db, 'SELECT CONNECTION_ID()'));
      expect([Number(a), Number(b)]).not.toContain(id);
      await cleanUp();
    });

    it('an unreachable server: acquire() and query() reject promptly with an error naming host and port; the password is never shown', async () => {
      const port = await closedPort();
      const password = 'hunter2-never-shown';
      const db = client({ host: '127.0.0.1', port, user: 'root', password, pool: { acquireTimeoutMs: 5_000 } });
      const t0 = performance.now();
      const errors = [await rejectionOf(db.query('SELECT 1')), await rejectionOf(db.acquire())];
      expect(performance.now() - t0).toBeLessThan(2_000);
      for (const error of errors) {
        expect(error).toBeInstanceOf(PoolCreateError);
        const text = `${String(error)} ${utilInspect(error, { depth: 5 })}`;
        expect(text).toContain(`127.0.0.1:${port}`);
        expect(text).toContain('ECONNREFUSED');
        expect(text).not.toContain(password);
      }
      const fromUri = client(`mysql://root:${password}@127.0.0.1:${port}/test`);
      const uriError = await rejectionOf(fromUri.query('SELECT 1'));
      expect(`${String(uriError)} ${utilInspect(uriError, { depth: 5 })}`).not.toContain(password);
      expect(JSON.stringify(inspect())).not.toContain(password);
      expect(utilInspect(db, { depth: 5 })).not.toContain(password);
      await cleanUp();
    });

    it('a scope timed out during SELECT SLEEP(5): the statement is killed on the server, the connection never returns mid-statement, the next borrower answers at once', async () => {
      const db = client({ pool: { max: 1 } });
      const id = Number(await scalar(db, 'SELECT CONNECTION_ID()'));
      const t0 = performance.now();
      const error = await rejectionOf(withScope(() => db.query('SELECT SLEEP(5)'), { timeout: 100 }));
      expect((error as Error).name).toBe('TimeoutError');
      expect(Number(await scalar(db, 'SELECT 41 + 1'))).toBe(42);
      expect(performance.now() - t0).toBeLessThan(2_000);
      const left = await settle(
        () => scalar(adminConn(), 'SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?', [id]),
        (n) => Number(n) === 0,
      );
      expect(Number(left)).toBe(0);
      expect(db.stats().kills).toBe(1);
      await cleanUp();
    });

    it('a scope aborted by its signal during SELECT SLEEP(5) inside a transaction: nothing is committed, the next borrower answers at once', async () => {
      const db = client({ pool: { max: 1 } });
      const controller = new AbortController();
      const running = withScope(
        () =>
          db.transaction(async (tx) => {
            await tx.query(`INSERT INTO \`${table}\` (id, note) VALUES (40, 'aborted')`);
            await tx.query('SELECT SLEEP(5)');
          }),
        { signal: controller.signal },
      );
      await sleep(100);
      controller.abort(new Error('client went away'));
      expect(((await rejectionOf(running)) as Error).message).toBe('client went away');
      expect(Number(await scalar(db, 'SELECT 1'))).toBe(1);
      expect(await ids()).toEqual([]);
      await cleanUp();
    });

    it('a client-side query timeout destroys the connection (the statement would keep running) and kills its thread', async () => {
      const db = client({ pool: { max: 1 } });
      const id = Number(await scalar(db, 'SELECT CONNECTION_ID()'));
      const error = (await rejectionOf(db.query({ sql: 'SELECT SLEEP(5)', timeout: 50 }))) as { code?: string };
      expect(error.code).toBe('PROTOCOL_SEQUENCE_TIMEOUT');
      expect(Number(await scalar(db, 'SELECT CONNECTION_ID()'))).not.toBe(id);
      await settle(
        async () => db.stats().kills,
        (n) => n === 1,
      );
      expect(db.stats().kills).toBe(1);
      await cleanUp();
    });
  });

  describe('the seed leak: a handler keeps its connection in module state', () => {
    it('1,000 tasks on a pool of 10 never run it dry; each is reclaimed at scope end and reported at the acquire() line; the open transaction is rolled back first', async () => {
      allowLeaks();
      const db = client({ pool: { max: 10, acquireTimeoutMs: 5_000 } });
      const moduleState: unknown[] = [];
      const { reports, stop } = collectReports();
      const handler = (i: number) =>
        withScope(async () => {
          const lease = await db.acquire(); // site:seed
          moduleState.push(lease);
          await lease.value.query('START TRANSACTION');
          await lease.value.query(`INSERT INTO \`${table}\` (id, note) VALUES (?, 'leaked')`, [1000 + i]);
        });
      for (let batch = 0; batch < 10; batch++) await Promise.all(Array.from({ length: 100 }, (_, i) => handler(batch * 100 + i)));
      stop();
      const unreleased = reports.filter((r) => r.type === 'unreleased');
      expect(unreleased).toHaveLength(1000);
      expect(new Set(unreleased.flatMap((r) => (r.type === 'unreleased' ? r.resources.map((x) => `${x.kind} ${x.site}`) : [])))).toEqual(
        new Set([`mysql connection ${siteOf('seed', 'acquire')}`]),
      );
      await settle(
        async () => db.stats().borrowed,
        (n) => n === 0,
      );
      expect(db.stats()).toMatchObject({ borrowed: 0, pending: 0 });
      expect(db.stats().size).toBeLessThanOrEqual(10);
      expect(await ids()).toEqual([]);
      moduleState.length = 0;
      await cleanUp();
    });
  });

  describe('bad input fails before any socket is opened, naming what is wrong', () => {
    it('unknown option, negative pool size, malformed URI, mysql2 pool option, non-array values', async () => {
      expect(() => createMysql({ ...MYSQL, hots: 'x' } as never)).toThrow(/unknown option 'hots'/);
      expect(() => createMysql({ ...MYSQL, pool: { max: -1 } })).toThrow(
        /createMysql\(\): in pool: option 'max' must be a whole number above 0, got -1/,
      );
      expect(() => createMysql({ ...MYSQL, connectionLimit: 5 } as never)).toThrow(
        /option 'connectionLimit' is mysql2's; here use pool: \{ max \}/,
      );
      expect(() => createMysql({ ...MYSQL, reset: 'sometimes' as never })).toThrow(
        /option 'reset' must be one of 'always', 'dirty', 'never'/,
      );
      const malformed = () => createMysql('mysql://root:s3cret-pw@[bad');
      expect(malformed).toThrow(/option 'uri' is not a valid URI/);
      expect(
        String(
          (() => {
            try {
              malformed();
            } catch (e) {
              return e;
            }
          })(),
        ),
      ).not.toContain('s3cret-pw');
      expect(() => createMysql('postgres://u@h/db')).toThrow(/must start with mysql:\/\//);
      expect(() => createMysql({ ...MYSQL, session: { 'time zone': '+00:00' } })).toThrow(/not a system variable name/);
      const db = client({ pool: { max: 1 } });
      await expect(db.query('SELECT ?', 5 as never)).rejects.toThrow(/db.query\(\): values must be an array, got 5/);
      await expect(db.execute(42 as never)).rejects.toThrow(/db.execute\(\): sql must be a string/);
      await expect(db.transaction('no' as never)).rejects.toThrow(TypeError);
      await expect(db.begin({ isolationLevel: 'SOMETIMES' as never })).rejects.toThrow(/isolationLevel/);
      expect(db.stats().size).toBe(0); // nothing was ever opened
      await cleanUp();
    });
  });
});
