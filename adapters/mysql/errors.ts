/** The adapter's own errors. mysql2's errors (a duplicate key, a lost connection) reach the caller untouched. */
import { CustodianError } from '../../src/index.js';

/**
 * A new connection could not be opened (refused, timed out, access denied, the set-up failed). The
 * message names the server (`host:port as user, database`), never the password; `cause` is mysql2's
 * error, whose `code` (`ECONNREFUSED`, `ER_ACCESS_DENIED_ERROR`) is also copied to `mysqlCode`.
 */
export class MysqlConnectError extends CustodianError {
  override readonly name = 'MysqlConnectError';
  readonly code = 'ERR_CUSTODIAN_MYSQL_CONNECT';
  constructor(
    message: string,
    /** mysql2's (or Node's) code of the underlying error, when it had one. */
    readonly mysqlCode: string | undefined,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** A transaction handle was used after it ended (committed, rolled back), or while a savepoint of it ran. */
export class MysqlTransactionError extends CustodianError {
  override readonly name = 'MysqlTransactionError';
  readonly code = 'ERR_CUSTODIAN_MYSQL_TRANSACTION';
}
