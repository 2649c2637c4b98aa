/**
 * A transaction on one pooled connection: the handle `db.begin()` returns and `db.transaction(fn)`
 * passes to `fn`. It is itself a lease of the current scope (kind `mysql transaction`, at the line
 * that began it): one left open is rolled back when it is disposed or reclaimed, and reported.
 */
import type { Connection, FieldPacket, QueryOptions, QueryResult } from 'mysql2/promise';
import type { Lease, LeakedResource } from '../../src/index.js';
import { describeLease, keepShape, reportUnfinished, settings } from '../../src/internal.js';
import { captureStack, send } from './callback.js';
import type { Connections } from './connections.js';
import { MysqlTransactionError } from './errors.js';
import { isPlain } from './plain.js';

/** Values for a statement's placeholders: an array, or an object with `namedPlaceholders`. */
export type StatementValues = readonly unknown[] | Readonly<Record<string, unknown>>;

/** Where a transaction is in its life. */
export type TransactionState = 'starting' | 'open' | 'committed' | 'rolled back' | 'failed';

/** Options of `db.begin()` and `db.transaction()`. */
export interface TransactionOptions {
  /** `SET TRANSACTION ISOLATION LEVEL ...` for this transaction only. Default: the server's. */
  isolationLevel?: 'READ UNCOMMITTED' | 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE' | undefined;
  /** `START TRANSACTION READ ONLY`. */
  readOnly?: boolean | undefined;
}

/**
 * A transaction: run statements with `query`/`execute`, end it with `commit()` or `rollback()`.
 * `await using tx = await db.begin()` rolls back a transaction still open at the end of the block
 * and reports it ("given back unfinished"). Nest with `tx.transaction(fn)` (a savepoint).
 */
export interface MysqlTransaction extends AsyncDisposable {
  /** `starting`, `open`, `committed`, `rolled back`, or `failed` (its connection broke). */
  readonly state: TransactionState;
  /** mysql2's `query` on the transaction's connection; generics as in mysql2. */
  query<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]>;
  /** mysql2's `execute` (a prepared statement) on the transaction's connection. */
  execute<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]>;
  /**
   * Runs `fn` inside a savepoint: its statements are rolled back to the savepoint if `fn` throws
   * (the error is rethrown), and kept (for the outer commit) if it returns.
   */
  transaction<R>(fn: (tx: MysqlTransaction) => R | PromiseLike<R>): Promise<Awaited<R>>;
  /** COMMIT, then gives the connection back. Rejects with mysql2's error if the commit failed (the transaction is then rolled back). */
  commit(): Promise<void>;
  /** ROLLBACK, then gives the connection back. */
  rollback(): Promise<void>;
  /** Rolls back when still open (and reports it), then gives the connection back. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** How a transaction reaches its client: the connection lease, the factory, the statement check. */
export interface TransactionHost {
  readonly name: string;
  readonly connections: Connections;
  checkValues(where: string, values: unknown): TypeError | undefined;
  /** mysql2's `trace`: statements' errors carry the caller's stack. */
  readonly trace: boolean;
}

export class Transaction implements MysqlTransaction {
  #state: TransactionState = 'starting';
  #conn: Connection | undefined = undefined;
  #connLease: Lease<Connection> | undefined = undefined;
  /** This handle as a lease of the scope that began it. */
  own: Lease<Transaction> | undefined = undefined;
  /** Every statement so far was plain (see plain.ts): the connection needs no reset after the end. */
  #plain = true;
  #savepoints = 0;
  #inSavepoint = 0;
  /** What the report of a transaction left open says of it, taken before its lease was released. */
  #leftOpen: LeakedResource | undefined = undefined;
  /** commit() or rollback() was called and has not answered: nothing else may run, nor end it again. */
  #ending: 'commit' | 'rollback' | undefined = undefined;
  readonly #host: TransactionHost;

  constructor(host: TransactionHost) {
    this.#host = host;
  }

  get state(): TransactionState {
    return this.#state;
  }

  /** Runs START TRANSACTION on the connection `acquiring` brings. */
  async start(acquiring: Promise<Lease<Connection>>, options: TransactionOptions | undefined): Promise<this> {
    const lease = await acquiring;
    this.#connLease = lease;
    const conn = lease.value;
    this.#conn = conn;
    if (this.#abandoned()) {
      // Nothing ran on it yet: it goes back as it came.
      await lease.release();
      throw this.#abandonedError();
    }
    try {
      if (options?.isolationLevel !== undefined) await exec(conn, `SET TRANSACTION ISOLATION LEVEL ${options.isolationLevel}`);
      await exec(conn, options?.readOnly === true ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION');
    } catch (error) {
      if (!this.#abandoned()) {
        this.#state = 'failed';
        await this.#giveBack(error);
        throw error;
      }
    }
    // end() or destroy() let go of it while START TRANSACTION was on its way, and destroyed the
    // connection (its answer is then usually an error, caught above): never hand out a transaction on it.
    if (this.#abandoned()) throw this.#abandonedError();
    this.#state = 'open';
    return this;
  }

  /** Its scope let go of it (end() or destroy()) before START TRANSACTION had answered. */
  #abandoned(): boolean {
    return this.#state !== 'starting';
  }

  #abandonedError(): MysqlTransactionError {
    return new MysqlTransactionError(
      `mysql "${this.#host.name}": the scope that began this transaction ended before START TRANSACTION had answered; nothing was committed, and its connection was destroyed (or never used). Await db.begin() and db.transaction() inside the scope`,
    );
  }

  query<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('query', sql, values, this.#host.trace ? captureStack(this.query) : undefined);
  }

  execute<T extends QueryResult>(sql: string | QueryOptions, values?: StatementValues): Promise<[T, FieldPacket[]]> {
    return this.#run<T>('execute', sql, values, this.#host.trace ? captureStack(this.execute) : undefined);
  }

  async #run<T extends QueryResult>(
    method: 'query' | 'execute',
    sql: string | QueryOptions,
    values: StatementValues | undefined,
    stack: { stack?: string } | undefined,
  ): Promise<[T, FieldPacket[]]> {
    const bad = this.#host.checkValues(`tx.${method}()`, values);
    if (bad !== undefined) throw bad;
    const conn = this.#openConnection(method);
    if (this.#plain && !isPlain(sql)) this.#plain = false;
    try {
      return await send<T>(conn, method, sql, values, stack);
    } catch (error) {
      if (this.#host.connections.broken(conn, error)) {
        this.#state = 'failed';
        await this.#giveBack(error);
      }
      throw error;
    }
  }

  #openConnection(what: string): Connection {
    if (this.#state !== 'open' || this.#conn === undefined) {
      throw new MysqlTransactionError(`mysql "${this.#host.name}": tx.${what}() on a transaction that is ${this.#state}: begin a new one`);
    }
    if (this.#ending !== undefined) {
      throw new MysqlTransactionError(
        `mysql "${this.#host.name}": tx.${what}() after tx.${this.#ending}() was called: the transaction is ending; await ${this.#ending}() and begin a new one`,
      );
    }
    if (this.#host.connections.state(this.#conn).dead) {
      // mysql2 reported its connection gone (killed, the server went away): the server rolled back.
      this.#state = 'failed';
      void this.#giveBack(new Error('connection lost'));
      throw new MysqlTransactionError(
        `mysql "${this.#host.name}": tx.${what}() on a transaction whose connection was lost (killed, or the server went away); the server rolled it back: begin a new one`,
      );
    }
    return this.#conn;
  }

  async transaction<R>(fn: (tx: MysqlTransaction) => R | PromiseLike<R>): Promise<Awaited<R>> {
    if (typeof fn !== 'function') throw new TypeError(`tx.transaction(): fn must be a function, got ${typeof fn}`);
    const conn = this.#openConnection('transaction');
    const savepoint = `custodian_sp_${++this.#savepoints}`;
    await exec(conn, `SAVEPOINT ${savepoint}`);
    this.#inSavepoint++;
    let result: Awaited<R>;
    try {
      result = await fn(this);
    } catch (error) {
      this.#inSavepoint--;
      if (this.#state === 'open') {
        try {
          await exec(conn, `ROLLBACK TO SAVEPOINT ${savepoint}`);
        } catch (rollbackError) {
          if (this.#host.connections.broken(conn, rollbackError)) {
            this.#state = 'failed';
            await this.#giveBack(rollbackError);
          }
        }
      }
      throw error;
    }
    this.#inSavepoint--;
    await exec(this.#openConnection('transaction'), `RELEASE SAVEPOINT ${savepoint}`);
    return result;
  }

  commit(): Promise<void> {
    return this.#end('commit', 'COMMIT', 'committed');
  }

  rollback(): Promise<void> {
    return this.#end('rollback', 'ROLLBACK', 'rolled back');
  }

  async #end(what: 'commit' | 'rollback', sql: string, outcome: TransactionState): Promise<void> {
    const conn = this.#openConnection(what);
    if (this.#inSavepoint > 0) {
      throw new MysqlTransactionError(
        `mysql "${this.#host.name}": tx.${what}() inside tx.transaction(fn): end the outer transaction after fn returns`,
      );
    }
    this.#ending = what;
    try {
      await exec(conn, sql);
    } catch (error) {
      await this.#abandon(conn, error);
      throw error;
    } finally {
      this.#ending = undefined;
    }
    this.#state = outcome;
    await this.#release();
  }

  /** COMMIT or ROLLBACK failed: roll back if the connection still works, else destroy it. */
  async #abandon(conn: Connection, error: unknown): Promise<void> {
    this.#state = 'failed';
    if (!this.#host.connections.broken(conn, error)) {
      try {
        await exec(conn, 'ROLLBACK');
        this.#plain = false; // whatever failed, reset the connection before anyone else gets it
        return this.#release();
      } catch (rollbackError) {
        error = rollbackError;
      }
    }
    return this.#giveBack(error);
  }

  [Symbol.asyncDispose](): Promise<void> {
    const own = this.own;
    if (own === undefined) return this.#release();
    // Described while still held: a released lease no longer knows its line.
    if (this.#state === 'open' && !own.released) this.#leftOpen = describeLease(own);
    return own.release();
  }

  /** The scope lease's release: rolls back a transaction still open (and reports it), gives the connection back. */
  async end(): Promise<void> {
    if (this.#state === 'starting') {
      // Let go of before it opened (its begin() was not awaited in the scope): START TRANSACTION
      // may be on its way. The connection cannot go back mid-command, nor with a transaction the
      // server may be opening: it is destroyed (the server rolls back), and the start fails.
      this.#state = 'rolled back';
      return this.#giveBack(this.#abandonedError());
    }
    // commit() or rollback() is answering (or rolling back after a failed COMMIT): it gives the
    // connection back, reset if it must be, once its statements are done.
    if (this.#ending !== undefined) return;
    if (this.#state !== 'open') return this.#release();
    const conn = this.#conn as Connection;
    this.#state = 'rolled back';
    let failed: unknown;
    try {
      await exec(conn, 'ROLLBACK');
    } catch (error) {
      failed = error;
    }
    if (this.own !== undefined) {
      reportUnfinished(
        this.#leftOpen ?? describeLease(this.own),
        failed === undefined
          ? 'rolled back (transaction left open)'
          : 'destroyed with its connection (transaction left open; ROLLBACK failed, so the server rolls it back)',
        'End every transaction with tx.commit() or tx.rollback(), or use db.transaction(fn), which does it for you.',
        settings.leaks,
      );
    }
    if (failed !== undefined) return this.#giveBack(failed);
    return this.#release();
  }

  /** The scope lease's destroy (the task was cancelled mid-flight): the connection goes, and the server rolls back. */
  destroy(reason: unknown): Promise<void> {
    if (this.#state === 'open' || this.#state === 'starting') this.#state = 'failed';
    return this.#giveBack(reason);
  }

  #release(): Promise<void> {
    const lease = this.#connLease;
    if (lease === undefined || lease.released) return Promise.resolve();
    if (!this.#plain) this.#host.connections.state(lease.value).dirty = true;
    const own = this.own;
    return lease.release().then(() => (own !== undefined && !own.released ? own.release() : undefined));
  }

  #giveBack(reason: unknown): Promise<void> {
    const lease = this.#connLease;
    const own = this.own;
    const done = lease === undefined || lease.released ? Promise.resolve() : lease.destroy(reason);
    return done.then(() => (own !== undefined && !own.released ? own.release() : undefined));
  }
}

/** One of the adapter's own statements (BEGIN, COMMIT, SAVEPOINT): no caller's stack to keep. */
function exec(conn: Connection, sql: string): Promise<unknown> {
  return send(conn, 'query', sql, undefined, undefined);
}

// The shape of a transaction, kept for the process (see src/util/shapes.ts): one lives only while
// it runs, and a major GC between two would otherwise cost the transaction path its optimized code.
keepShape(new Transaction({ name: '', connections: undefined as unknown as Connections, checkValues: () => undefined, trace: true }));
