/**
 * createPool with real MariaDB connections (mysql2/promise) as the pooled resource. Nothing is
 * mocked: leases, resets, validation, kills and closes are checked against what the server itself
 * reports (CONNECTION_ID(), information_schema.PROCESSLIST, rows in a real table).
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createPool,
  currentScope,
  inspect,
  PoolClosedError,
  PoolCreateError,
  withScope,
  type Pool,
  type PoolFactory,
  type PoolOptions,
} from '../../src/index.js';
import { collectReports, gate, rejectionOf, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { closedPort, closeMysql, collectDestroys, connectMysql, describeWithServer, MYSQL, probeMysql, RUN_ID, settle } from './servers.js';

const server = await probeMysql();
const siteOf = sitesIn(import.meta.url);

useCleanCustodian({ leaks: 'reclaim' });

/** A pool's factory with a record of what it did, so the server's view can be checked against it. */
interface Tracked {
  readonly factory: PoolFactory<Connection>;
  /** Calls of create, failed or not. */
  creates: number;
  /** CONNECTION_ID() of every connection create made, in order. */
  readonly ids: number[];
  /** CONNECTION_ID() of every connection whose destroy has finished, in order. */
  readonly destroyed: number[];
}

/** Every connection any factory made, so afterAll can drop those a failed test left open. */
const opened = new Set<Connection>();
const pools: Pool<Connection>[] = [];

function mysqlFactory(extra: Pick<PoolFactory<Connection>, 'validate' | 'reset'> = {}, connect = () => connectMysql()): Tracked {
  const tracked: Tracked = {
    creates: 0,
    ids: [],
    destroyed: [],
    factory: {
      create: async () => {
        tracked.creates++;
        const conn = await connect();
        opened.add(conn);
        tracked.ids.push(conn.threadId);
        return conn;
      },
      destroy: async (conn) => {
        await closeMysql(conn);
        opened.delete(conn);
        tracked.destroyed.push(conn.threadId);
      },
      ...extra,
    },
  };
  return tracked;
}

function newPool(tracked: Tracked, options: PoolOptions = {}): Pool<Connection> {
  const pool = createPool(tracked.factory, { kind: 'mysql connection', acquireTimeoutMs: 10_000, ...options });
  pools.push(pool);
  return pool;
}

async function scalar(conn: Connection, sql: string, params: unknown[] = []): Promise<unknown> {
  const [rows] = await conn.query<RowDataPacket[]>(sql, params);
  const row = rows[0];
  if (row === undefined) throw new Error(`no row from ${sql}`);
  return Object.values(row)[0];
}

const connectionId = async (conn: Connection) => Number(await scalar(conn, 'SELECT CONNECTION_ID()'));

describeWithServer(server, `pool of real MariaDB connections (${MYSQL.host}:${MYSQL.port})`, () => {
  let admin: Connection | undefined;
  const table = `custodian_it_${RUN_ID}`;

  /** The connection of this file's own that checks on the others. */
  const adminConn = (): Connection => {
    if (admin === undefined) throw new Error('no admin connection');
    return admin;
  };

  /** Which of `ids` the server still lists as connected. */
  const onServer = async (ids: readonly number[]): Promise<number[]> => {
    if (ids.length === 0) return [];
    const [rows] = await adminConn().query<RowDataPacket[]>('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID IN (?)', [ids]);
    return rows.map((row) => Number(row['id'])).sort((a, b) => a - b);
  };

  /** Waits for the server to let go of every one of `ids`; returns those it still lists. */
  const goneFromServer = (ids: readonly number[]) => settle(() => onServer(ids), (left) => left.length === 0);

  const sorted = (ids: readonly number[]) => [...ids].sort((a, b) => a - b);

  beforeAll(async () => {
    if (!server.up) return;
    admin = await connectMysql();
    await admin.query(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL) ENGINE=InnoDB`);
  });

  afterAll(async () => {
    await Promise.allSettled(pools.map((pool) => pool.close({ timeout: 1_000 })));
    for (const conn of opened) conn.destroy();
    opened.clear();
    if (admin !== undefined) {
      await admin.query(`DROP TABLE IF EXISTS \`${table}\``);
      await closeMysql(admin);
    }
  });

  it('acquires, queries and releases in a scope; a leaked connection is reclaimed at scope end, reported with its line, and reused', async () => {
    const t = mysqlFactory();
    const pool = newPool(t, { name: `mysql-leak-${RUN_ID}`, max: 2 });
    const { reports, stop } = collectReports();
    let first: number;
    try {
      first = await withScope(async () => {
        const lease = await pool.acquire();
        expect(await scalar(lease.value, 'SELECT ? + 1', [41])).toBe(42);
        const id = await connectionId(lease.value);
        await lease.release();
        return id;
      });
      expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(reports).toEqual([]);

      const leaked = await withScope(async () => {
        const lease = await pool.acquire(); // site:leak
        return connectionId(lease.value);
      });
      expect(leaked).toBe(first);
      expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(reports).toMatchObject([
        {
          type: 'unreleased',
          cancelled: false,
          resources: [{ kind: 'mysql connection', label: pool.name, pool: pool.name, site: siteOf('leak', 'acquire') }],
        },
      ]);

      const next = await withScope(async () => {
        await using lease = await pool.acquire();
        return connectionId(lease.value);
      });
      expect(next).toBe(first);
      expect(t.ids).toEqual([first]);
      expect(await onServer(t.ids)).toEqual([first]);
    } finally {
      stop();
    }
    await pool.close();
    expect(t.destroyed).toEqual([first]);
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('leaves exactly the pool\u2019s own connections on the server after many tasks that release, leak or throw, and none after close()', async () => {
    const t = mysqlFactory();
    const pool = newPool(t, { name: `mysql-many-${RUN_ID}`, max: 4 });
    expect(await onServer(t.ids)).toEqual([]); // the baseline: none of this pool's

    const { reports, stop } = collectReports();
    const tasks = 60;
    let outcomes: PromiseSettledResult<number>[];
    try {
      outcomes = await Promise.allSettled(
        Array.from({ length: tasks }, (_, i) =>
          withScope(async () => {
            if (i % 3 === 0) {
              const lease = await pool.acquire(); // site:many-leak
              return Number(await scalar(lease.value, 'SELECT ?', [i]));
            }
            await using lease = await pool.acquire();
            const n = Number(await scalar(lease.value, 'SELECT ?', [i]));
            if (i % 3 === 1) throw new Error(`task ${i} failed after its query`);
            return n;
          }),
        ),
      );
    } finally {
      stop();
    }
    outcomes.forEach((outcome, i) => {
      if (i % 3 === 1) expect(outcome).toMatchObject({ status: 'rejected', reason: { message: `task ${i} failed after its query` } });
      else expect(outcome).toEqual({ status: 'fulfilled', value: i });
    });
    const leakSite = siteOf('many-leak', 'acquire');
    const leaks = reports.filter((r) => r.type === 'unreleased' && r.resources.some((res) => res.site === leakSite));
    expect(leaks).toHaveLength(tasks / 3);

    const stats = pool.stats();
    expect(stats).toMatchObject({ borrowed: 0, pending: 0, available: stats.size });
    expect(stats.size).toBeGreaterThanOrEqual(1);
    expect(stats.size).toBeLessThanOrEqual(4);
    expect(t.creates).toBe(stats.size); // nothing was destroyed, so nothing had to be made again
    expect(t.destroyed).toEqual([]);
    expect(await onServer(t.ids)).toEqual(sorted(t.ids));

    await pool.close();
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids));
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('rolls back a transaction left open: the next borrower of the same connection does not see the uncommitted row; a dead one is destroyed instead', async () => {
    const resets: number[] = [];
    const t = mysqlFactory({
      reset: async (conn) => {
        resets.push(conn.threadId);
        await conn.query('ROLLBACK');
      },
    });
    const pool = newPool(t, { name: `mysql-reset-${RUN_ID}`, max: 1 });
    const count = (conn: Connection) => scalar(conn, `SELECT COUNT(*) FROM \`${table}\``).then(Number);

    // Released with the transaction open, straight to a borrower that was already waiting.
    const inserted = gate();
    const letGo = gate();
    const writer = withScope(async () => {
      const lease = await pool.acquire();
      await lease.value.query('START TRANSACTION');
      await lease.value.query(`INSERT INTO \`${table}\` (id, note) VALUES (1, 'uncommitted')`);
      const seenByWriter = await count(lease.value);
      const id = await connectionId(lease.value);
      inserted.open();
      await letGo.promise;
      await lease.release();
      return { id, seenByWriter };
    });
    await inserted.promise;
    const reader = withScope(async () => {
      await using lease = await pool.acquire();
      return { id: await connectionId(lease.value), seen: await count(lease.value) };
    });
    expect(await settle(async () => pool.stats().pending, (n) => n === 1)).toBe(1);
    letGo.open();
    const written = await writer;
    const read = await reader;
    expect(written.seenByWriter).toBe(1); // the row was there, uncommitted, on that connection
    expect(read.id).toBe(written.id); // the same connection ...
    expect(read.seen).toBe(0); // ... after ROLLBACK
    expect(await count(adminConn())).toBe(0);

    // Left open by a task that leaked the lease: the scope's reclaim goes through reset too.
    const leakedId = await withScope(async () => {
      const lease = await pool.acquire();
      await lease.value.query('START TRANSACTION');
      await lease.value.query(`INSERT INTO \`${table}\` (id, note) VALUES (2, 'leaked')`);
      return connectionId(lease.value);
    });
    const after = await withScope(async () => {
      await using lease = await pool.acquire();
      return { id: await connectionId(lease.value), seen: await count(lease.value) };
    });
    expect(after).toEqual({ id: leakedId, seen: 0 });
    expect(leakedId).toBe(written.id);
    expect(resets).toEqual([written.id, written.id, written.id, written.id]);
    expect(await count(adminConn())).toBe(0);

    // Killed while borrowed and then released as if nothing happened: ROLLBACK fails, so it is destroyed, not reused.
    const destroys = collectDestroys(pool.name);
    try {
      const deadId = await withScope(async () => {
        const lease = await pool.acquire();
        const id = await connectionId(lease.value);
        await lease.value.query('START TRANSACTION');
        await adminConn().query(`KILL ${id}`);
        expect(await goneFromServer([id])).toEqual([]);
        await expect(lease.release()).resolves.toBeUndefined();
        return id;
      });
      expect(deadId).toBe(written.id);
      expect(destroys.events).toMatchObject([{ reason: 'reset-failed', cause: expect.any(Error) }]);
      expect(t.destroyed).toEqual([deadId]);
      const replacement = await withScope(async () => {
        await using lease = await pool.acquire();
        return { id: await connectionId(lease.value), seen: await count(lease.value) };
      });
      expect(replacement.id).not.toBe(deadId);
      expect(replacement.seen).toBe(0);
    } finally {
      destroys.stop();
    }

    await pool.close();
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('validates idle connections before handing one out: those killed server-side are destroyed and the acquirer gets a fresh one', async () => {
    const pings: number[] = [];
    const t = mysqlFactory({
      validate: async (conn) => {
        pings.push(conn.threadId);
        await conn.ping();
        return true;
      },
    });
    const pool = newPool(t, { name: `mysql-validate-${RUN_ID}`, max: 3 });
    const destroys = collectDestroys(pool.name);
    try {
      // Two idle connections, both killed (a server restart, as the pool sees it).
      const both = gate();
      let inside = 0;
      const killed = await Promise.all(
        Array.from({ length: 2 }, () =>
          withScope(async () => {
            await using lease = await pool.acquire();
            if (++inside === 2) both.open();
            await both.promise;
            return connectionId(lease.value);
          }),
        ),
      );
      expect(pool.stats()).toMatchObject({ size: 2, available: 2 });
      for (const id of killed) await adminConn().query(`KILL ${id}`);
      expect(await goneFromServer(killed)).toEqual([]);

      const fresh = await withScope(async () => {
        await using lease = await pool.acquire();
        return { id: await connectionId(lease.value), answer: await scalar(lease.value, 'SELECT 6 * 7') };
      });
      expect(fresh.answer).toBe(42);
      expect(killed).not.toContain(fresh.id);
      expect(sorted(pings)).toEqual(sorted(killed)); // each dead one pinged once; the fresh one handed out unchecked
      expect(sorted(t.ids.slice(0, 2))).toEqual(sorted(killed));
      expect(t.ids[2]).toBe(fresh.id);
      expect(t.ids).toHaveLength(3);
      expect(destroys.events).toMatchObject([{ reason: 'validate-failed' }, { reason: 'validate-failed' }]);
      expect(sorted(t.destroyed)).toEqual(sorted(killed));
      expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(await onServer(t.ids)).toEqual([fresh.id]);

      // The fresh one, idle now, passes validation and is handed out again.
      const again = await withScope(async () => {
        await using lease = await pool.acquire();
        return connectionId(lease.value);
      });
      expect(again).toBe(fresh.id);
      expect(pings.slice(2)).toEqual([fresh.id]);
    } finally {
      destroys.stop();
    }
    await pool.close();
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('replaces a borrowed connection killed mid-query once the code calls lease.destroy(err)', async () => {
    const t = mysqlFactory();
    const pool = newPool(t, { name: `mysql-midquery-${RUN_ID}`, max: 2, min: 1 });
    expect(await settle(async () => pool.stats().available, (n) => n === 1)).toBe(1);
    const destroys = collectDestroys(pool.name);
    try {
      const victim = await withScope(async () => {
        const lease = await pool.acquire();
        const id = await connectionId(lease.value);
        const query = lease.value.query('SELECT SLEEP(10)');
        query.catch(() => {}); // awaited below; it must not count as unhandled meanwhile
        const running = await settle(
          () => scalar(adminConn(), 'SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE ?', [id, '%SLEEP(10)%']),
          (n) => Number(n) === 1,
        );
        expect(Number(running)).toBe(1);
        await adminConn().query(`KILL ${id}`);
        const error = await rejectionOf(query);
        await lease.destroy(error);
        return { id, error };
      });
      expect(victim.error).toBeInstanceOf(Error);
      expect(destroys.events).toEqual([expect.objectContaining({ reason: 'destroyed', cause: victim.error })]);
      expect(t.destroyed).toEqual([victim.id]);
      expect(pool.stats().borrowed).toBe(0);

      // min: 1, so the pool makes a replacement by itself.
      const stats = await settle(async () => pool.stats(), (s) => s.available === 1);
      expect(stats).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(t.ids).toHaveLength(2);
      const next = await withScope(async () => {
        await using lease = await pool.acquire();
        return { id: await connectionId(lease.value), answer: await scalar(lease.value, 'SELECT 1') };
      });
      expect(next.answer).toBe(1);
      expect(next.id).not.toBe(victim.id);
      expect(next.id).toBe(t.ids[1]);
      expect(await onServer(t.ids)).toEqual([next.id]);
    } finally {
      destroys.stop();
    }
    await pool.close();
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('fails 50 concurrent acquires with PoolCreateError (cause: ECONNREFUSED) when the server refuses, without a retry loop', async () => {
    const port = await closedPort();
    const failures: unknown[] = [];
    const t = mysqlFactory({}, async () => {
      try {
        return await connectMysql({ port });
      } catch (error) {
        failures.push(error);
        throw error;
      }
    });
    const max = 5;
    // A timeout far beyond the test's: only a create failure can end these acquires in time.
    const pool = newPool(t, { name: `mysql-refused-${RUN_ID}`, max, acquireTimeoutMs: 60_000 });
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => withScope(async () => void (await pool.acquire()))));
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as PoolCreateError;
      expect(error).toBeInstanceOf(PoolCreateError);
      expect(error.code).toBe('ERR_CUSTODIAN_POOL_CREATE');
      expect(error.cause).toMatchObject({ code: 'ECONNREFUSED', port });
      expect(failures).toContain(error.cause);
    }
    expect(t.creates).toBeGreaterThanOrEqual(1);
    expect(t.creates).toBeLessThanOrEqual(max);
    expect(t.creates).toBe(failures.length);
    expect(t.ids).toEqual([]);
    const creates = t.creates;
    await sleep(200);
    expect(t.creates).toBe(creates); // no busy loop behind the scenes
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0, pending: 0 });

    // A later acquire gets an attempt of its own, and fails the same way.
    const later = await rejectionOf(withScope(() => pool.acquire()));
    expect(later).toBeInstanceOf(PoolCreateError);
    expect((later as PoolCreateError).cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(t.creates).toBeGreaterThan(creates);
    expect(t.creates).toBeLessThanOrEqual(creates + max);
    await pool.close();
  });

  it('resumes each of 30 waiting tasks in its own scope, on a pool of 2 running real queries', async () => {
    const t = mysqlFactory();
    const pool = newPool(t, { name: `mysql-waiters-${RUN_ID}`, max: 2 });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        withScope(async (scope) => {
          const lease = await pool.acquire();
          const ownAfterAcquire = currentScope() === scope;
          const heldByOwnScope = inspect({ maxScopes: 1_000 }).scopes.oldest.find((s) => s.id === scope.id)?.leases;
          const echoed = Number(await scalar(lease.value, 'SELECT ? + 0 * SLEEP(0.005)', [i]));
          const ownAfterQuery = currentScope() === scope;
          const id = await connectionId(lease.value);
          await lease.release();
          return { i, ownAfterAcquire, heldByOwnScope, echoed, ownAfterQuery, id };
        }),
      ),
    );
    for (const r of results) {
      expect(r).toEqual({ i: r.i, ownAfterAcquire: true, heldByOwnScope: 1, echoed: r.i, ownAfterQuery: true, id: r.id });
    }
    expect(new Set(results.map((r) => r.id)).size).toBeLessThanOrEqual(2);
    expect(t.ids.length).toBeLessThanOrEqual(2);
    expect(pool.stats()).toMatchObject({ borrowed: 0, pending: 0 });
    await pool.close();
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('close() waits for a borrowed connection, then closes every connection server-side before it resolves', async () => {
    const t = mysqlFactory();
    const pool = newPool(t, { name: `mysql-close-${RUN_ID}`, max: 4 });
    // Four at once, so that four connections exist.
    const allIn = gate();
    let inside = 0;
    await Promise.all(
      Array.from({ length: 4 }, () =>
        withScope(async () => {
          await using lease = await pool.acquire();
          if (++inside === 4) allIn.open();
          await allIn.promise;
          await lease.value.query('SELECT 1');
        }),
      ),
    );
    expect(t.ids).toHaveLength(4);
    expect(await onServer(t.ids)).toEqual(sorted(t.ids));

    const holding = gate();
    const letGo = gate();
    const holder = withScope(async () => {
      const lease = await pool.acquire();
      holding.open();
      await letGo.promise;
      const answer = await scalar(lease.value, 'SELECT 1');
      await lease.release();
      return answer;
    });
    await holding.promise;
    const closing = pool.close();
    expect(await rejectionOf(withScope(() => pool.acquire()))).toBeInstanceOf(PoolClosedError);
    letGo.open();
    expect(await holder).toBe(1); // the borrowed connection still worked while close() waited
    await closing;
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids)); // every destroy finished before close() resolved
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('close() while connections are still being created fails the waiting acquires and closes those connections once made', async () => {
    const connected = gate();
    const proceed = gate();
    let connecting = 0;
    const t = mysqlFactory({}, async () => {
      const conn = await connectMysql(); // connected server-side; the pool does not have it yet
      if (++connecting === 2) connected.open();
      await proceed.promise;
      return conn;
    });
    const pool = newPool(t, { name: `mysql-close-creating-${RUN_ID}`, max: 2 });
    const acquires = Array.from({ length: 2 }, () => rejectionOf(withScope(() => pool.acquire())));
    await connected.promise;
    expect(pool.stats()).toMatchObject({ size: 2, pending: 2 });
    const closing = pool.close();
    for (const error of await Promise.all(acquires)) expect(error).toBeInstanceOf(PoolClosedError);
    proceed.open();
    await closing;
    expect(t.ids).toHaveLength(2);
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids));
    expect(await goneFromServer(t.ids)).toEqual([]);
  });

  it('counts nothing in stats() once close() destroyed the idle connections', async () => {
    const t = mysqlFactory();
    const pool = newPool(t, { name: `mysql-closed-stats-${RUN_ID}`, max: 2 });
    const both = gate();
    let inside = 0;
    await Promise.all(
      Array.from({ length: 2 }, () =>
        withScope(async () => {
          await using lease = await pool.acquire();
          if (++inside === 2) both.open();
          await both.promise;
          await lease.value.query('SELECT 1');
        }),
      ),
    );
    expect(pool.stats()).toMatchObject({ size: 2, available: 2, borrowed: 0, pending: 0 });
    await pool.close();
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids));
    expect(await goneFromServer(t.ids)).toEqual([]);
    // Documented: size === available + borrowed when nothing is being created; all three are 0 now.
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0, pending: 0 });
  });
});
