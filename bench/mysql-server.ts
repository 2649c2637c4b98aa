/**
 * The MariaDB the mysql2 benchmarks run against (127.0.0.1:3306, root, no password, database
 * `test`; BENCH_MYSQL_HOST / BENCH_MYSQL_PORT override), loaded and probed once per suite. When it
 * cannot be reached, the suite's rows are skipped with a note that says why.
 */
import type * as MysqlPromise from 'mysql2/promise';
import type { Row } from './harness.js';

/** An error as one line: its code (mysql2 and node set one) and message. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `${typeof code === 'string' ? `${code}: ` : ''}${error.message || error.name}`;
  }
  return String(error);
}

export interface BenchMysql {
  readonly mysql: typeof MysqlPromise;
  readonly config: { host: string; port: number; user: string; password: string; database: string; connectTimeout: number };
  /** "MariaDB at host:port", for notes. */
  readonly where: string;
  /** Logs and notes `${label} rows skipped: ${why}`; returns no rows. */
  readonly skip: (why: string) => Row[];
}

/** The server's connection options (BENCH_MYSQL_HOST / BENCH_MYSQL_PORT override the address). */
export function mysqlConfig(): BenchMysql['config'] {
  const host = process.env['BENCH_MYSQL_HOST'] ?? '127.0.0.1';
  const port = Number(process.env['BENCH_MYSQL_PORT'] ?? 3306);
  return { host, port, user: 'root', password: '', database: 'test', connectTimeout: 2_000 };
}

/** mysql2 loaded and the server answering, or the rows skipped (`label` names them in the note). */
export async function benchMysql(label: string, log: (line: string) => void, note: (line: string) => void): Promise<BenchMysql | Row[]> {
  const config = mysqlConfig();
  const where = `MariaDB at ${config.host}:${config.port}`;
  const skip = (why: string): Row[] => {
    const line = `${label} rows skipped: ${why}`;
    log(`  ${line}`);
    note(line);
    return [];
  };
  let mysql: typeof MysqlPromise;
  try {
    mysql = await import('mysql2/promise');
  } catch (error) {
    return skip(`mysql2 could not be loaded (${errorMessage(error)})`);
  }
  try {
    const probe = await mysql.createConnection(config);
    await probe.end();
  } catch (error) {
    return skip(`${where} is unreachable (${errorMessage(error)})`);
  }
  log(`  ${where} reachable`);
  return { mysql, config, where, skip };
}
