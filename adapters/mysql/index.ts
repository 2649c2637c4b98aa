/**
 * custodian/mysql: mysql2 connections in a custodian pool. Statements borrow a connection each and
 * give it back at once; `acquire()` lends one for several; transactions are leases of the task that
 * began them, rolled back and reported when left open; a connection given back is reset for its
 * next borrower; a broken one is destroyed, never reused. See docs/mysql.md.
 */
import type { Connection, FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import {
  createPool,
  currentScope,
  track,
  type AcquireOptions,
  type Lease,
  type Pool,
  type PoolFactory,
  type PoolStats,
} from '../../src/index.js';
import { describe, HOOKS_IN_ROOT, lendAbove, runInRoot, showInInspect } from '../../src/internal.js';
import { Connections } from './connections.js';
import { resolveMysqlOptions, type MysqlOptions } from './options.js';
import { callbackApi, captureStack, withStack } from './callback.js';
import { isPlain } from './plain.js';
import { Transaction, type MysqlTransaction, type StatementValues, type TransactionOptions } from './transaction.js';

export { MysqlConnectError, MysqlTransactionError } from './errors.js';
export type { MysqlOptions, ResetPolicy, SessionValue } from './options.js';
export type { MysqlTransaction, StatementValues, TransactionOptions, TransactionState } from './transaction.js';

/** What `db.stats()` returns: the pool's counts, and what the adapter did to connections. */
export interface MysqlStats extends PoolStats {
  /** Connections reset (COM_RESET_CONNECTION and the session set-up) on their way back. */
  readonly resets: number;
  /** Mean milliseconds one reset took (0 before the first). */
  readonly resetMeanMs: number;
  /** Server threads killed because their connection was dropped mid-statement. */
  readonly kills: number;
}

/** Options of `db.acquire()`: those of `pool.acquire()`. */
export type MysqlAcquireOptions = Omit<AcquireOptions, 'boundary'>;

/** A MySQL/MariaDB client on a custodian pool. Make one with `createMysql`. */
export interface Mysql extends AsyncDisposable {
  /** The name given (default `mysql`): the pool's, in errors, reports and `inspect()`. */
  readonly name: string;
  /**
   * Runs one statement on a connection borrowed for it alone, given back as soon as the answer is
   * in: a task holds no connection between its statements. mysql2's `query`, generics included.
   */
  query<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]>;
  /** As `query`, with mysql2's `execute` (a prepared statement, cached per connection). */
  execute<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]>;
  /**
   * Borrows a connection for several statements. Give it back with `await using` or
   * `lease.release()`; a task that forgets gets it reclaimed at its end, reported with this line.
   * It is reset before anyone else gets it (under `reset: 'dirty'` and `'always'`).
   */
  acquire(options?: MysqlAcquireOptions): Promise<Lease<Connection>>;
  /**
   * Begins a transaction on a borrowed connection: `await using tx = await db.begin()`. Left open,
   * it is rolled back when disposed or reclaimed, and reported with this line.
   */
  begin(options?: TransactionOptions): Promise<MysqlTransaction>;
  /**
   * Runs `fn` in a transaction: commits when it returns, rolls back when it throws (rethrowing its
   * error untouched). Nested transactions are `tx.transaction(fn)` (a savepoint); another
   * `db.transaction()` is a separate transaction on another connection.
   */
  transaction<R>(fn: (tx: MysqlTransaction) => R | PromiseLike<R>, options?: TransactionOptions): Promise<Awaited<R>>;
  /** The pool's counts and the adapter's. */
  stats(): MysqlStats;
  /** Closes the pool: waits for borrowed connections (up to `timeout` ms, default 10000), then ends them all. */
  close(options?: { timeout?: number | undefined }): Promise<void>;
}

const ISOLATION = ['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'];

/**
 * Creates a client: mysql2 connection options (or a `mysql://` URI, alone or as `uri`), plus
 * `pool` (custodian's pool options), `name`, `reset`, `session` and `onConnect`. Bad options throw
 * a `TypeError` naming the option before any socket is opened; no connection is opened until the
 * first statement (or `pool.min`).
 *
 * @example
 * const db = createMysql({ uri: process.env.DATABASE_URL, pool: { max: 10 }, session: { time_zone: '+00:00' } });
 * const [rows] = await db.query<RowDataPacket[]>('SELECT * FROM users WHERE id = ?', [id]);
 * await db.transaction(async (tx) => { await tx.execute('INSERT INTO orders (user) VALUES (?)', [id]); });
 */
export function createMysql(options: MysqlOptions | string): Mysql {
  const o = resolveMysqlOptions(options);
  const named = o.connection.namedPlaceholders === true;
  // A connection can die only after the pool below created it, so `pool` is set by then.
  const connections = new Connections(o, (conn) => void pool.evict(conn));
  const factory: PoolFactory<Connection> & { [HOOKS_IN_ROOT]: true } = {
    create: () => connections.create(),
    destroy: (conn) => connections.destroy(conn),
    validate: (conn) => connections.validate(conn),
    reset: (conn) => connections.reset(conn),
    // validate is a sync read; reset switches to the root context itself when it sends something.
    [HOOKS_IN_ROOT]: true,
  };
  let pool: Pool<Connection>;
  try {
    pool = createPool<Connection>(factory, { acquireTimeoutMs: 10_000, ...o.pool, name: o.name, kind: 'mysql connection' });
  } catch (error) {
    // The pool's own checks, said as the caller wrote them: createMysql({ pool: { max: -1 } }).
    if (error instanceof TypeError) throw new TypeError(error.message.replace(/^createPool\(\): /, 'createMysql(): in pool: '));
    throw error;
  }
  const p = pool;

  const checkValues = (where: string, values: unknown): TypeError | undefined => {
    if (values === undefined || Array.isArray(values)) return undefined;
    if (named && typeof values === 'object' && values !== null) return undefined;
    return new TypeError(
      `${where}: values must be an array${named ? ' or an object (namedPlaceholders is on)' : ''}, got ${describe(values)}; for one placeholder pass [value]`,
    );
  };
  const host = { name: o.name, connections, checkValues, trace: o.connection.trace !== false };
  const always = o.reset === 'always';
  const never = o.reset === 'never';

  // mysql2's `trace` (on by default): errors carry the caller's stack. Captured here, on the
  // caller's line, rather than by mysql2's promise wrapper after our await, where it has none.
  const trace = host.trace;

  /**
   * One statement: borrow, run, give back at once (not awaited: a reset, if due, runs behind the
   * answer). Through mysql2's callback API: one promise per statement instead of three.
   */
  function statement<T extends QueryResult>(
    boundary: (...args: never[]) => unknown,
    method: 'query' | 'execute',
    sql: string | QueryOptions,
    values: StatementValues | undefined,
    stack: { stack?: string } | undefined,
  ): Promise<[T, FieldPacket[]]> {
    // One promise for the caller, settled from mysql2's callback; the connection comes by callback
    // too (lendAbove), possibly inside another statement's release: no promise or microtask of its own.
    return new Promise<[T, FieldPacket[]]>((resolve, reject) => {
      lendAbove(
        p,
        boundary,
        (lease) => {
          const conn = lease.value;
          const s = connections.state(conn);
          const done = (error: unknown, rows: T, fields: FieldPacket[]) => {
            s.running = false;
            if (error) {
              if (connections.broken(conn, error)) {
                void lease.destroy(error);
              } else {
                if (!never && (always || !isPlain(sql))) s.dirty = true;
                void lease.release();
              }
              reject(withStack(error, stack));
              return;
            }
            if (!never && (always || !isPlain(sql))) s.dirty = true;
            void lease.release();
            resolve([rows, fields]);
          };
          try {
            s.running = true;
            callbackApi(conn)[method](sql, values, done);
          } catch (error) {
            done(error, undefined as never, []);
          }
        },
        reject,
      );
    });
  }

  function query<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]> {
    const bad = checkSql('db.query()', sql) ?? checkValues('db.query()', values);
    if (bad !== undefined) return Promise.reject(bad);
    return statement<T>(query, 'query', sql, values, trace ? captureStack(query) : undefined);
  }

  function execute<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]> {
    const bad = checkSql('db.execute()', sql) ?? checkValues('db.execute()', values);
    if (bad !== undefined) return Promise.reject(bad);
    return statement<T>(execute, 'execute', sql, values, trace ? captureStack(execute) : undefined);
  }

  async function lend(acquiring: Promise<Lease<Connection>>): Promise<Lease<Connection>> {
    const lease = await acquiring;
    const s = connections.state(lease.value);
    // Whatever the holder does to the session is unknown: it is reset on the way back.
    s.dirty = true;
    s.lent = true;
    return lease;
  }

  function acquire(options?: MysqlAcquireOptions): Promise<Lease<Connection>> {
    if (options !== undefined && (typeof options !== 'object' || options === null || 'boundary' in options)) {
      return Promise.reject(new TypeError(`db.acquire(): options must be an object with signal and timeout, got ${describe(options)}`));
    }
    try {
      return lend(p.acquire({ ...options, boundary: acquire }));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Begins a transaction whose reports name the line that called `boundary` (begin or transaction). */
  function open(boundary: (...args: never[]) => unknown, options: TransactionOptions | undefined): Promise<Transaction> {
    const bad = checkTransactionOptions(options);
    if (bad !== undefined) return Promise.reject(bad);
    const tx = new Transaction(host);
    try {
      // The handle is the scope's lease, taken now, while the caller's line is on the stack.
      tx.own = track(tx, {
        release: (t) => t.end(),
        destroy: (t, reason) => t.destroy(reason),
        kind: 'mysql transaction',
        label: o.name,
        boundary,
      });
    } catch (error) {
      return Promise.reject(error); // a scope that already closed: ScopeClosedError
    }
    // The connection's own lease belongs to no scope: the transaction's lease stands for it, and
    // gives it back (one report per forgotten transaction, not two). The scope's signal still stops the wait.
    const signal = currentScope()?.signal;
    let acquiring: Promise<Lease<Connection>>;
    try {
      acquiring = runInRoot(() => p.acquire({ boundary, ...(signal === undefined ? {} : { signal }) }));
    } catch (error) {
      void tx.own.release();
      return Promise.reject(error);
    }
    return tx.start(acquiring, options).catch(async (error: unknown) => {
      await tx.own?.release();
      throw error;
    });
  }

  function begin(options?: TransactionOptions): Promise<MysqlTransaction> {
    return open(begin, options);
  }

  function transaction<R>(fn: (tx: MysqlTransaction) => R | PromiseLike<R>, options?: TransactionOptions): Promise<Awaited<R>> {
    if (typeof fn !== 'function') return Promise.reject(new TypeError(`db.transaction(): fn must be a function, got ${describe(fn)}`));
    return run(open(transaction, options), fn);
  }

  async function run<R>(opening: Promise<Transaction>, fn: (tx: MysqlTransaction) => R | PromiseLike<R>): Promise<Awaited<R>> {
    const tx = await opening;
    let result: Awaited<R>;
    try {
      result = await fn(tx);
    } catch (error) {
      if (tx.state === 'open') {
        try {
          await tx.rollback();
        } catch {
          // The rollback's failure destroyed the connection (the server rolls back); fn's error is the one to see.
        }
      } else await tx.own?.release();
      throw error;
    }
    if (tx.state === 'open') await tx.commit();
    else await tx.own?.release(); // fn ended it itself
    return result;
  }

  const hide = showInInspect({
    name: o.name,
    kind: 'mysql client',
    stats: () => ({ server: o.where, reset: o.reset, resets: connections.resets, kills: connections.kills }),
  });

  let closing: Promise<void> | undefined;
  const db: Mysql = {
    name: o.name,
    query,
    execute,
    acquire,
    begin,
    transaction,
    stats: () => ({
      ...p.stats(),
      resets: connections.resets,
      resetMeanMs: connections.resets === 0 ? 0 : connections.resetMs / connections.resets,
      kills: connections.kills,
    }),
    close: (closeOptions) => {
      closing ??= p.close(closeOptions).finally(hide);
      return closing;
    },
    [Symbol.asyncDispose]: () => db.close(),
  };
  return db;
}

function checkSql(where: string, sql: unknown): TypeError | undefined {
  if (typeof sql === 'string') return undefined;
  if (typeof sql === 'object' && sql !== null && typeof (sql as { sql?: unknown }).sql === 'string') return undefined;
  return new TypeError(`${where}: sql must be a string or mysql2 query options with a string 'sql', got ${describe(sql)}`);
}

function checkTransactionOptions(options: unknown): TypeError | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    return new TypeError(`db.begin(): options must be an object, got ${describe(options)}`);
  }
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined) continue;
    if (key === 'isolationLevel') {
      if (!ISOLATION.includes(value as string))
        return new TypeError(
          `db.begin(): option 'isolationLevel' must be one of ${ISOLATION.map((l) => `'${l}'`).join(', ')}, got ${describe(value)}`,
        );
    } else if (key === 'readOnly') {
      if (typeof value !== 'boolean') return new TypeError(`db.begin(): option 'readOnly' must be true or false, got ${describe(value)}`);
    } else return new TypeError(`db.begin(): unknown option '${key}'; known options are isolationLevel, readOnly`);
  }
  return undefined;
}
