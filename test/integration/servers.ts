/**
 * The real servers the integration tests pool connections to: where they are, how to tell they are
 * up, and what to do when they are not. Without `CI` a suite whose server is down is skipped (the
 * reason is printed); with `CI` set, every test of it fails with the address and the command that
 * starts the server, so a CI run can never pass by not testing.
 */
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { createConnection, type Connection, type ConnectionOptions } from 'mysql2/promise';
import { beforeEach, describe } from 'vitest';
import { channels } from '../../src/index.js';
export { settle } from '../helpers.js';

/** Unique per run: table, key and client names carry it, so runs never see each other's data. */
export const RUN_ID = `${process.pid.toString(36)}${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

export const MYSQL = { host: '127.0.0.1', port: 3306, user: 'root', password: '', database: 'test' } as const;
export const REDIS = { host: '127.0.0.1', port: 6379 } as const;

/** Whether a server answered the probe, and if not, the message a test fails (or skips) with. */
export interface ServerStatus {
  readonly name: string;
  readonly address: string;
  readonly up: boolean;
  /** Why it is considered down, and how to start it. Empty when up. */
  readonly message: string;
}

const START_MARIADB = `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd && mariadb -h ${MYSQL.host} -u ${MYSQL.user} -e 'create database if not exists ${MYSQL.database}'`;
const START_REDIS = `redis-server --daemonize yes --bind ${REDIS.host} --port ${REDIS.port} --save "" --appendonly no`;

const errorText = (error: unknown) =>
  error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error);

function status(name: string, address: string, start: string, error: unknown): ServerStatus {
  if (error === undefined) return { name, address, up: true, message: '' };
  return {
    name,
    address,
    up: false,
    message: `${name} at ${address} is not reachable (${errorText(error)}). Start it with: ${start}`,
  };
}

/** Connects to MariaDB as the tests will (database `test`) and runs `SELECT 1`. */
export async function probeMysql(): Promise<ServerStatus> {
  let failure: unknown;
  try {
    const conn = await connectMysql();
    try {
      await conn.query('SELECT 1');
    } finally {
      await closeMysql(conn);
    }
  } catch (error) {
    failure = error ?? new Error('connection failed');
  }
  return status('MariaDB', `${MYSQL.host}:${MYSQL.port} (user ${MYSQL.user}, database ${MYSQL.database})`, START_MARIADB, failure);
}

/** Connects to Redis as the tests will and sends `PING`. */
export async function probeRedis(): Promise<ServerStatus> {
  let failure: unknown;
  try {
    const client = await connectRedis({ connectionName: `custodian-it-probe-${RUN_ID}` });
    try {
      await client.ping();
    } finally {
      await closeRedis(client);
    }
  } catch (error) {
    failure = error ?? new Error('connection failed');
  }
  return status('Redis', `${REDIS.host}:${REDIS.port}`, START_REDIS, failure);
}

/**
 * `describe` for tests that need `server`. Down without CI: skipped, with the reason printed and in
 * the title. Down under CI: not skipped, and every test fails with the message before it starts.
 * Set-up hooks inside should check `server.up` themselves (or use `whenUp`).
 */
export function describeWithServer(server: ServerStatus, title: string, body: () => void): void {
  const skip = !server.up && !process.env['CI'];
  if (skip) console.warn(`[custodian integration] skipping "${title}": ${server.message} (set CI to make this a failure)`);
  describe.skipIf(skip)(skip ? `${title} (skipped: ${server.name} at ${server.address} is down)` : title, () => {
    beforeEach(() => {
      if (!server.up) throw new Error(`${server.message}\nCI is set, so a server that is down fails the test instead of skipping it.`);
    });
    body();
  });
}

/** MariaDB connections whose socket has closed (QUIT answered, killed, or lost). */
const mysqlClosed = new WeakSet<Connection>();

/** A MariaDB connection to the test database; an `error` listener keeps a server-side kill from crashing the worker. */
export async function connectMysql(options: ConnectionOptions = {}): Promise<Connection> {
  const conn = await createConnection({ ...MYSQL, connectTimeout: 2_000, ...options });
  conn.on('error', () => {
    // A killed connection emits its fatal error here too; the query that was running (if any) rejects with it.
    mysqlClosed.add(conn);
  });
  conn.on('end', () => mysqlClosed.add(conn));
  return conn;
}

/**
 * Ends a MariaDB connection and resolves once the server has closed it. mysql2's `end()` resolves
 * as soon as QUIT is written; a pool's destroy should mean the connection is gone.
 */
export async function closeMysql(conn: Connection, timeoutMs = 2_000): Promise<void> {
  if (mysqlClosed.has(conn)) {
    conn.destroy();
    return;
  }
  const closed = new Promise<boolean>((resolve) => {
    conn.once('end', () => resolve(true));
    conn.once('error', () => resolve(true));
  });
  try {
    await conn.end();
  } catch {
    conn.destroy();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, timeoutMs, false)));
  const done = await Promise.race([closed, late]);
  clearTimeout(timer);
  if (!done) conn.destroy();
}

/**
 * A connected Redis client that never reconnects (a killed connection stays dead, as a pool must
 * see it) and never queues commands while down. A failed connect rejects with the socket's error
 * (ECONNREFUSED), not ioredis' generic "Connection is closed.".
 */
export async function connectRedis(options: { port?: number; connectionName?: string } = {}): Promise<Redis> {
  const client = new Redis({
    ...REDIS,
    lazyConnect: true,
    connectTimeout: 2_000,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    ...options,
  });
  let socketError: unknown;
  client.on('error', (error: unknown) => {
    socketError ??= error;
  });
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw socketError ?? error;
  }
  return client;
}

/** QUIT when the connection still works, else drop the socket. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // dead after all: fall through
    }
  }
  client.disconnect();
}

/** A TCP port on 127.0.0.1 that nothing listens on: bound, then released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Records the `custodian:pool:destroy` events of one pool until `stop()`. */
export function collectDestroys(poolName: string): { events: Record<string, unknown>[]; stop: () => void } {
  const events: Record<string, unknown>[] = [];
  const onMessage = (message: unknown) => {
    const event = message as Record<string, unknown>;
    if (event['pool'] === poolName) events.push(event);
  };
  subscribe(channels.poolDestroy, onMessage);
  return { events, stop: () => unsubscribe(channels.poolDestroy, onMessage) };
}
