/**
 * custodian's pool against the failures raw pools get wrong: `npm run build && node
 * --enable-source-maps dist/examples/pool.js`. No database: the "connections" are in memory, and
 * the "database" can be switched off.
 *
 *   1. the database is down: 20 requests fail at once, with the driver's error as the cause,
 *      after a bounded number of connection attempts (no retry loop, no wait for the timeout);
 *   2. a request that gave up waiting (its scope timed out) never receives a connection later;
 *   3. a handler that forgets to release: its scope gives the connection back, and the report
 *      names the line; a connection returned mid-transaction is rolled back before reuse.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { configure, createPool, withScope } from '../src/index.js';

interface Connection {
  readonly id: number;
  inTransaction: boolean;
  query(sql: string): Promise<string>;
}

let databaseUp = false;
let connects = 0;

/** A fake driver: connecting fails while the database is down, like ECONNREFUSED would. */
async function connect(): Promise<Connection> {
  connects++;
  await sleep(2);
  if (!databaseUp) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:3306'), { code: 'ECONNREFUSED' });
  const conn: Connection = {
    id: connects,
    inTransaction: false,
    query: async (sql) => {
      await sleep(1);
      if (sql === 'begin') conn.inTransaction = true;
      if (sql === 'rollback') conn.inTransaction = false;
      return `${sql}: ok on connection ${conn.id}`;
    },
  };
  return conn;
}

const pool = createPool(
  { create: connect, destroy: () => {}, reset: (conn) => (conn.inTransaction ? conn.query('rollback') : undefined) },
  { name: 'mysql', kind: 'mysql connection', max: 4, acquireTimeoutMs: 5_000 },
);

async function main(): Promise<void> {
  configure({ leaks: 'warn', sites: 'always' });

  console.log('1) the database is down; 20 requests arrive');
  const started = performance.now();
  const outcomes = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) =>
      withScope(async () => {
        await using conn = await pool.acquire();
        return conn.value.query(`select ${i}`);
      }),
    ),
  );
  const first = outcomes[0] as PromiseRejectedResult;
  console.log(
    `   ${outcomes.filter((o) => o.status === 'rejected').length}/20 failed in ${Math.round(performance.now() - started)} ms (acquireTimeoutMs is 5000): ${first.reason.name}`,
  );
  const attempts = connects;
  await sleep(100);
  console.log(`   ${attempts} connection attempts for 20 requests; ${connects - attempts} more in the next 100 ms`);
  console.log(`   cause: ${(first.reason.cause as Error).message}`);

  databaseUp = true;
  console.log('\n2) the database is back; a request times out while waiting for a busy pool');
  const holders = Array.from({ length: 4 }, () =>
    withScope(async () => {
      await using conn = await pool.acquire();
      await sleep(100); // four slow requests hold every connection
      return conn.value.id;
    }),
  );
  const impatient = await withScope(async () => (await pool.acquire()).value.id, { name: 'GET /fast', timeout: 20 }).catch(
    (error: Error) => `${error.name}: ${error.message}`,
  );
  console.log(`   the impatient request: ${impatient}`);
  await Promise.all(holders);
  console.log(`   after the slow ones finished: ${JSON.stringify(pool.stats())} (nothing handed to the request that gave up)`);

  console.log('\n3) a handler forgets to release, in the middle of a transaction');
  const leaked = await withScope(
    async () => {
      const conn = await pool.acquire(); // no `await using`: the leak
      await conn.value.query('begin');
      return conn.value.id;
    },
    { name: 'POST /orders' },
  );
  await withScope(async () => {
    await using conn = await pool.acquire();
    console.log(
      `   connection ${leaked} leaked in a transaction; the next request got connection ${conn.value.id}, in a transaction: ${conn.value.inTransaction}`,
    );
  });
  await pool.close();
  console.log(`   pool closed: ${JSON.stringify(pool.stats())}`);
}

await main();
