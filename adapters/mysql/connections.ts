/**
 * mysql2's quirks, in one place: opening a connection (and its session set-up), telling a broken
 * one, resetting one for its next borrower, and getting rid of one, killing its thread on the
 * server when a statement may still run there. This is the pool's factory. create and destroy run
 * in the root async context (the pool calls them there, and the kill connection is opened there
 * too); validate and reset are called in the borrower's context (HOOKS_IN_ROOT), and reset sends
 * from the root context itself.
 */
import mysql, { type Connection } from 'mysql2/promise';
import { LATE, runInRoot, warnRelease, within } from '../../src/internal.js';
import { send } from './callback.js';
import { MysqlConnectError } from './errors.js';
import { scrub, type ResolvedMysqlOptions } from './options.js';

/** What the adapter knows about one pooled connection beyond what mysql2 says. */
export interface ConnectionState {
  /** mysql2 said `error` or `end`: never lend it again. */
  dead: boolean;
  /** Something may have changed its session state since its last reset. */
  dirty: boolean;
  /** Lent through `acquire()` since its last reset: under `reset: 'never'` it still gets a ROLLBACK. */
  lent: boolean;
  /** A client-side timeout fired: the server may still be running the statement. */
  unclean: boolean;
  /**
   * One of `db.query()`/`db.execute()`'s statements is on it and has not answered. Its scope can
   * end first (the statement was not awaited): the connection must then not go back mid-statement.
   */
  running: boolean;
}

/** The parts of mysql2's connection (lib/base/connection.js) that say whether it is usable or busy. */
interface BaseConnection {
  readonly state?: string;
  readonly _command?: unknown;
  readonly _commands?: { readonly length: number };
  readonly stream?: { destroy(): void };
  /** Set from the server's handshake (lib/commands/client_handshake.js). */
  readonly _isMariaDB?: boolean;
}

/** The promise connection's core connection (mysql2's `PromiseConnection.connection`, untyped on `Connection`). */
const core = (conn: Connection): BaseConnection => (conn as unknown as { connection?: BaseConnection }).connection ?? {};

/** How long a graceful end (QUIT) may take before the socket is dropped. */
const END_TIMEOUT_MS = 2_000;
/** Ceiling on connecting the side connection that kills a busy thread. */
const KILL_CONNECT_TIMEOUT_MS = 5_000;

const noop = () => {};

export class Connections {
  readonly #states = new WeakMap<Connection, ConnectionState>();
  readonly #o: ResolvedMysqlOptions;
  /** Told when mysql2 reports a connection dead (`error`, `end`): the client evicts it from the pool. */
  readonly #onDead: (conn: Connection) => void;
  /** The SET run after connect: only `session` (the handshake already set the charset). */
  readonly #connectSql: string | undefined;
  resets = 0;
  resetMs = 0;
  kills = 0;

  constructor(options: ResolvedMysqlOptions, onDead: (conn: Connection) => void) {
    this.#o = options;
    this.#onDead = onDead;
    const comma = options.setupSql.indexOf(', @@SESSION.');
    this.#connectSql = comma === -1 ? undefined : `SET ${options.setupSql.slice(comma + 2)}`;
  }

  state(conn: Connection): ConnectionState {
    let s = this.#states.get(conn);
    if (s === undefined) {
      s = { dead: true, dirty: true, lent: false, unclean: false, running: false };
      this.#states.set(conn, s);
    }
    return s;
  }

  /** Opens a connection and applies the session set-up; a failure is a MysqlConnectError naming the server, never the password. */
  async create(): Promise<Connection> {
    let conn: Connection;
    try {
      conn = await mysql.createConnection(this.#o.connection);
    } catch (error) {
      throw this.#connectError('could not connect to', error);
    }
    const s: ConnectionState = { dead: false, dirty: false, lent: false, unclean: false, running: false };
    this.#states.set(conn, s);
    // Without an 'error' listener a server-side KILL of an idle connection would crash the process.
    const dead = () => {
      if (s.dead) return;
      s.dead = true;
      this.#onDead(conn);
    };
    conn.on('error', dead);
    conn.on('end', dead);
    try {
      if (this.#connectSql !== undefined) await conn.query(this.#connectSql);
      if (this.#o.onConnect !== undefined) await this.#o.onConnect(conn);
    } catch (error) {
      conn.destroy();
      throw this.#connectError('connected, but the session set-up (session, onConnect) failed on', error);
    }
    return conn;
  }

  #connectError(what: string, error: unknown): MysqlConnectError {
    const e = error as { code?: unknown; message?: unknown } | null;
    const code = typeof e?.code === 'string' ? e.code : undefined;
    const text = typeof e?.message === 'string' ? e.message : String(error);
    const message = scrub(
      `mysql "${this.#o.name}": ${what} ${this.#o.where}: ${code !== undefined && !text.includes(code) ? `${code}: ` : ''}${text}`,
      this.#o.secrets,
    );
    return new MysqlConnectError(message, code, { cause: error });
  }

  /** True while mysql2 still considers the connection usable. A sync check: the pool calls it on every borrow from the idle set. */
  validate(conn: Connection): boolean {
    const s = this.#states.get(conn);
    if (s === undefined || s.dead || s.unclean) return false;
    const state = core(conn).state;
    return state !== 'error' && state !== 'disconnected';
  }

  /**
   * Whether a failed statement left the connection unusable (then it is destroyed, never reused):
   * a fatal error (lost, killed, protocol), a client-side timeout (the statement may still run on
   * the server, and the connection is busy with it), or mysql2 saying so.
   */
  broken(conn: Connection, error: unknown): boolean {
    const s = this.state(conn);
    const e = error as { fatal?: unknown; code?: unknown } | null;
    if (e?.code === 'PROTOCOL_SEQUENCE_TIMEOUT') s.unclean = true;
    if (s.dead || s.unclean || e?.fatal === true) return true;
    const state = core(conn).state;
    return state === 'error' || state === 'disconnected';
  }

  /**
   * The pool's reset: see ResetPolicy. Returns nothing (no promise, no tick) when no reset is due.
   * The pool calls it in the releaser's context (HOOKS_IN_ROOT): what it sends, it sends from the
   * root context, so that the round trip's callbacks do not carry the releasing task's.
   */
  reset(conn: Connection): unknown {
    const s = this.state(conn);
    // The pool destroys it (a running statement is killed with its thread: see destroy()).
    if (s.dead || s.unclean || s.running) throw new Error('connection is dead or busy');
    const policy = this.#o.reset;
    if (policy === 'never') {
      if (!s.lent) return undefined;
      s.lent = false;
      s.dirty = false;
      return runInRoot(() => conn.query('ROLLBACK'));
    }
    if (policy === 'dirty' && !s.dirty) return undefined;
    return runInRoot(() => this.#resetNow(conn, s));
  }

  async #resetNow(conn: Connection, s: ConnectionState): Promise<void> {
    const t0 = performance.now();
    // COM_RESET_CONNECTION: transactions, user and session variables, temporary tables, locks,
    // GET_LOCK, LAST_INSERT_ID, prepared statements (mysql2 clears its cache with it). On MySQL it
    // also resets the character set, so the set-up runs again.
    // MariaDB restores the handshake's character set with the reset (MySQL does not): with no
    // `session` variables there is then nothing to re-apply, and one round trip less.
    const sql = this.#connectSql === undefined && core(conn)._isMariaDB === true ? undefined : this.#o.setupSql;
    // Both sent at once: mysql2 queues the SET behind the reset, so no turn of the event loop is lost between them.
    await (sql === undefined ? resetOnly(conn) : Promise.all([resetOnly(conn), send(conn, 'query', sql, undefined, undefined)]));
    if (this.#o.onConnect !== undefined) await this.#o.onConnect(conn);
    s.dirty = false;
    s.lent = false;
    this.resets++;
    this.resetMs += performance.now() - t0;
  }

  /**
   * The pool's destroy. An idle connection says QUIT; one whose statement may still run on the
   * server (a scope cancelled mid-statement, a client-side timeout) is dropped and its thread
   * killed from a side connection, so that the server stops the statement, rolls back, frees its
   * locks and its slot; the pool counts the connection until then.
   */
  async destroy(conn: Connection): Promise<void> {
    const s = this.state(conn);
    const c = core(conn);
    const busy = s.unclean || c._command != null || (c._commands?.length ?? 0) > 0;
    if (s.dead) {
      conn.destroy();
      return;
    }
    s.dead = true;
    if (busy) {
      try {
        await this.#kill(conn.threadId);
      } finally {
        // Dropping the socket (not conn.destroy(), which marks it closing and leaves the running
        // query unanswered for good) makes mysql2 reject whatever was in flight with PROTOCOL_CONNECTION_LOST.
        const stream = (c as { stream?: { destroy(): void } }).stream;
        if (stream !== undefined) stream.destroy();
        else conn.destroy();
      }
      return;
    }
    const ended = await within(conn.end().catch(noop), END_TIMEOUT_MS);
    if (ended === LATE) conn.destroy();
  }

  async #kill(threadId: number): Promise<void> {
    if (!Number.isInteger(threadId)) return;
    let killer: Connection | undefined;
    try {
      const connectTimeout = Math.min(this.#o.connection.connectTimeout ?? KILL_CONNECT_TIMEOUT_MS, KILL_CONNECT_TIMEOUT_MS);
      killer = await mysql.createConnection({ ...this.#o.connection, connectTimeout });
      killer.on('error', noop);
      await killer.query(`KILL ${threadId}`);
      this.kills++;
    } catch (error) {
      // 1094 ER_NO_SUCH_THREAD: it ended by itself meanwhile.
      if ((error as { errno?: unknown } | null)?.errno !== 1094) {
        warnRelease(
          scrub(
            `mysql "${this.#o.name}": could not kill thread ${threadId} on ${this.#o.where} after dropping its connection mid-statement (${String((error as Error | null)?.message ?? error)}); the server stops it when the statement ends`,
            this.#o.secrets,
          ),
        );
      }
    } finally {
      killer?.destroy();
    }
  }
}

/** COM_RESET_CONNECTION through mysql2's callback API (its promise wrapper would capture a stack nobody reads). */
function resetOnly(conn: Connection): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const base = (conn as unknown as { connection: { reset(cb: (error: unknown) => void): unknown } }).connection;
    base.reset((error) => (error ? reject(error) : resolve()));
  });
}
