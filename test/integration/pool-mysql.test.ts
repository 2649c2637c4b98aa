/**
 * The pool suite (pool-suite.ts) against real MariaDB connections (mysql2/promise). The server's
 * view: CONNECTION_ID(), information_schema.PROCESSLIST, rows in a real table. The state a
 * connection keeps between borrowers is an open transaction, which the factory's reset rolls back.
 */
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { expect } from 'vitest';
import { describePoolAgainst, type PoolDriver } from './pool-suite.js';
import { closeMysql, connectMysql, MYSQL, probeMysql, RUN_ID, settle } from './servers.js';

const server = await probeMysql();
const table = `custodian_it_${RUN_ID}`;

/** The connection of this file's own that checks on the others. */
let admin: Connection | undefined;
const adminConn = (): Connection => {
  if (admin === undefined) throw new Error('no admin connection');
  return admin;
};

/** Thread ids of the connections opened under each tag: PROCESSLIST has no client name to find them by. */
const tagged = new Map<string, number[]>();

async function scalar(conn: Connection, sql: string, params: unknown[] = []): Promise<unknown> {
  const [rows] = await conn.query<RowDataPacket[]>(sql, params);
  const row = rows[0];
  if (row === undefined) throw new Error(`no row from ${sql}`);
  return Object.values(row)[0];
}

const count = (conn: Connection) => scalar(conn, `SELECT COUNT(*) FROM \`${table}\``).then(Number);

const mysql: PoolDriver<Connection> = {
  server,
  title: `pool of real MariaDB connections (${MYSQL.host}:${MYSQL.port})`,
  prefix: 'mysql',
  words: { command: 'query', commands: 'queries', runsCommands: 'queries' },

  setUp: async () => {
    admin = await connectMysql();
    await admin.query(`CREATE TABLE \`${table}\` (id INT PRIMARY KEY, note VARCHAR(64) NOT NULL) ENGINE=InnoDB`);
  },
  tearDown: async () => {
    if (admin === undefined) return;
    await admin.query(`DROP TABLE IF EXISTS \`${table}\``);
    await closeMysql(admin);
  },

  connect: async (tag, port) => {
    const conn = await connectMysql(port === undefined ? {} : { port });
    tagged.set(tag, [...(tagged.get(tag) ?? []), conn.threadId]);
    return conn;
  },
  close: (conn) => closeMysql(conn),
  drop: (conn) => conn.destroy(),
  idOf: (conn) => conn.threadId,
  connectionId: async (conn) => Number(await scalar(conn, 'SELECT CONNECTION_ID()')),
  listed: async (tag) => {
    const ids = tagged.get(tag) ?? [];
    if (ids.length === 0) return [];
    const [rows] = await adminConn().query<RowDataPacket[]>('SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID IN (?)', [ids]);
    return rows.map((row) => Number(row['id'])).sort((a, b) => a - b);
  },
  kill: async (id) => {
    await adminConn().query(`KILL ${id}`);
  },
  ping: async (conn) => {
    await conn.ping();
    return true;
  },

  readWrite: async (conn) => {
    expect(await scalar(conn, 'SELECT ? + 1', [41])).toBe(42);
  },
  echo: async (conn, n) => Number(await scalar(conn, 'SELECT ?', [n])),
  busyEcho: async (conn, n) => Number(await scalar(conn, 'SELECT ? + 0 * SLEEP(0.005)', [n])),
  question: { ask: (conn) => scalar(conn, 'SELECT 6 * 7'), answer: 42 },
  roundTrip: { run: (conn) => scalar(conn, 'SELECT 1'), answer: 1 },
  startSlowCommand: async (conn) => {
    const command = conn.query('SELECT SLEEP(10)');
    command.catch(() => {}); // awaited by the suite; it must not count as unhandled meanwhile
    const running = await settle(
      () =>
        scalar(adminConn(), 'SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE ?', [
          conn.threadId,
          '%SLEEP(10)%',
        ]),
      (n) => Number(n) === 1,
    );
    expect(Number(running)).toBe(1);
    return { command };
  },

  session: {
    title:
      'rolls back a transaction left open: the next borrower of the same connection does not see the uncommitted row; a dead one is destroyed instead',
    reset: async (conn) => {
      await conn.query('ROLLBACK');
    },
    dirty: async (conn, round) => {
      await conn.query('START TRANSACTION');
      if (round === 'killed') return undefined;
      await conn.query(`INSERT INTO \`${table}\` (id, note) VALUES (?, ?)`, round === 'handed-over' ? [1, 'uncommitted'] : [2, 'leaked']);
      return round === 'handed-over' ? { rows: await count(conn) } : undefined;
    },
    dirtyView: { rows: 1 }, // the row was there, uncommitted, on that connection
    seen: async (conn) => ({ rows: await count(conn) }),
    clean: { rows: 0 }, // after ROLLBACK
    checkServer: async () => {
      expect(await count(adminConn())).toBe(0); // nothing was ever committed
    },
  },
};

describePoolAgainst(mysql);
