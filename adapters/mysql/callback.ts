/**
 * mysql2's callback API under its promise connection, for the adapter's own statements. The
 * promise API costs a promise and, with mysql2's `trace` (on by default), a stack capture per call
 * (about 7 µs here, and garbage); for START TRANSACTION, COMMIT or SAVEPOINT the caller's stack
 * says nothing, and for the caller's statements the adapter captures it once, at the caller's line.
 */
import type { Connection, FieldPacket, QueryOptions } from 'mysql2/promise';

export type Callback = (error: unknown, rows: never, fields: FieldPacket[]) => void;

/** mysql2's callback connection (lib/base/connection.js) under a promise connection (`PromiseConnection.connection`). */
export interface CallbackConnection {
  query(sql: string | QueryOptions, values: unknown, cb: Callback): unknown;
  execute(sql: string | QueryOptions, values: unknown, cb: Callback): unknown;
}

export const callbackApi = (conn: Connection): CallbackConnection => (conn as unknown as { connection: CallbackConnection }).connection;

/** A stack captured above `boundary`, formatted only if an error needs it (mysql2's `trace`). */
export function captureStack(boundary: (...args: never[]) => unknown): { stack?: string } {
  const holder: { stack?: string } = {};
  Error.captureStackTrace(holder, boundary);
  return holder;
}

/** As mysql2's promise API does with `trace`: the error keeps its fields, and gets the caller's stack. */
export function withStack(error: unknown, holder: { stack?: string } | undefined): unknown {
  const stack = holder?.stack;
  if (typeof stack === 'string' && error instanceof Error) {
    const newline = stack.indexOf('\n');
    error.stack = `${error.name}: ${error.message}${newline === -1 ? '' : stack.slice(newline)}`;
  }
  return error;
}

/** Runs `method` on the connection's callback API; resolves mysql2's `[rows, fields]`. */
export function send<T>(
  conn: Connection,
  method: 'query' | 'execute',
  sql: string | QueryOptions,
  values: unknown,
  stack: { stack?: string } | undefined,
): Promise<[T, FieldPacket[]]> {
  return new Promise<[T, FieldPacket[]]>((resolve, reject) => {
    const done: Callback = (error, rows, fields) => {
      if (error) reject(withStack(error, stack));
      else resolve([rows as T, fields]);
    };
    try {
      callbackApi(conn)[method](sql, values, done);
    } catch (error) {
      reject(error);
    }
  });
}
