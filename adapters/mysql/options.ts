/**
 * What `createMysql` accepts and how it is checked: mysql2's connection options (or a `mysql://`
 * URI), custodian's pool options, the reset policy and the session set-up. Every check runs before
 * any socket is opened, and no message ever carries the password.
 */
import type { Connection, ConnectionOptions } from 'mysql2/promise';
import type { PoolOptions } from '../../src/index.js';
import { describe, rules, validateOptions, type Rule } from '../../src/internal.js';

/**
 * When a connection given back is reset (COM_RESET_CONNECTION, then the session set-up again):
 * - `'dirty'` (default): only after a borrow that may have changed session state: every
 *   `acquire()` lease, and statements or transactions whose SQL the adapter cannot tell is plain
 *   (see docs/mysql.md: a `SELECT`/`INSERT`/`UPDATE`/`DELETE` with no `@`, no lock, no temporary
 *   table, one statement).
 * - `'always'`: after every borrow, statements included (a round trip per statement, and mysql2's
 *   prepared-statement cache is dropped each time).
 * - `'never'`: no reset; leases from `acquire()` still get a `ROLLBACK`. Session state set on a
 *   connection is seen by its next borrower: for apps that own that state on purpose.
 */
export type ResetPolicy = 'always' | 'dirty' | 'never';

/** A session system variable's value for `session`. */
export type SessionValue = string | number | boolean;

/** Options of `createMysql`: mysql2's connection options, plus the ones below. */
export interface MysqlOptions extends Omit<ConnectionOptions, PoolOnlyKey | 'pool' | 'charsetNumber' | 'uri'> {
  /** A `mysql://user:password@host:port/database?option=value` URI; explicit options override it. */
  uri?: string | undefined;
  /** Shown in errors, reports, events and `inspect()`; the pool's name. Default `mysql`. */
  name?: string | undefined;
  /** custodian's pool options (`max`, `acquireTimeoutMs`, ...); `name` and `kind` are the adapter's. */
  pool?: Omit<PoolOptions, 'name' | 'kind'> | undefined;
  /** When a connection given back is reset. Default `'dirty'`. */
  reset?: ResetPolicy | undefined;
  /**
   * Session system variables set on every new connection and again after every reset:
   * `{ time_zone: '+00:00', sql_mode: 'STRICT_ALL_TABLES' }`. (mysql2's `timezone` option is
   * client-side only: how JS dates are converted; this is the server's session.)
   */
  session?: Readonly<Record<string, SessionValue>> | undefined;
  /**
   * Runs on every new connection and again after every reset, after `charset` and `session` were
   * applied: for set-up those cannot express. Runs outside any scope. A throw fails the connect
   * (or destroys the connection after a reset).
   */
  onConnect?: ((connection: Connection) => unknown) | undefined;
}

/** mysql2 pool options, which custodian's pool replaces. */
type PoolOnlyKey =
  | 'connectionLimit'
  | 'maxIdle'
  | 'idleTimeout'
  | 'queueLimit'
  | 'resetOnRelease'
  | 'waitForConnections'
  | 'Promise'
  | 'isServer'
  | 'stream';

/** What each mysql2 pool option is called here, for the error that refuses it. */
const POOL_INSTEAD: Record<PoolOnlyKey | 'charsetNumber', string> = {
  connectionLimit: "pool: { max } (custodian's pool replaces mysql2's)",
  maxIdle: 'pool: { min, idleTimeoutMs }',
  idleTimeout: 'pool: { idleTimeoutMs }',
  queueLimit: 'pool: { maxWaiting }',
  resetOnRelease: "reset: 'always' | 'dirty' | 'never'",
  waitForConnections: 'pool: { acquireTimeoutMs } (acquires always wait, up to that timeout)',
  Promise: 'nothing: native promises only',
  isServer: 'nothing: this is a client',
  stream: 'nothing: the pool opens its own sockets (use host/port or socketPath)',
  charsetNumber: "charset (a collation name such as 'UTF8MB4_UNICODE_CI'), which the adapter re-applies after a reset",
};

const any: Rule = () => undefined;
const bool: Rule = (v) => (typeof v === 'boolean' ? undefined : 'true or false');
const port: Rule = (v) =>
  (typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65536) ||
  (typeof v === 'string' && /^\d{1,5}$/.test(v) && +v > 0 && +v < 65536)
    ? undefined
    : 'a TCP port from 1 to 65535';
const charset: Rule = (v) =>
  typeof v === 'string' && /^[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*$/.test(v)
    ? undefined
    : "a collation or charset name such as 'UTF8MB4_UNICODE_CI'";
const plainObject: Rule = (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? undefined : 'an object');

/** mysql2's connection options (lib/connection_config.js `validOptions`, less the pool's), loosely typed: mysql2 checks them itself. */
const connectionRules: Record<string, Rule> = {
  authPlugins: plainObject,
  authSwitchHandler: rules.function,
  bigNumberStrings: bool,
  charset,
  compress: bool,
  connectAttributes: plainObject,
  connectTimeout: rules.ms,
  database: rules.string,
  dateStrings: any,
  debug: any,
  decimalNumbers: bool,
  disableEval: bool,
  enableCleartextPlugin: bool,
  enableKeepAlive: bool,
  flags: any,
  gracefulEnd: bool,
  host: rules.string,
  infileStreamFactory: rules.function,
  insecureAuth: bool,
  jsonStrings: bool,
  keepAliveInitialDelay: rules.ms,
  localAddress: rules.string,
  maxPreparedStatements: rules.positiveInt,
  multipleStatements: bool,
  namedPlaceholders: bool,
  nestTables: any,
  password: rules.string,
  password1: rules.string,
  password2: rules.string,
  password3: rules.string,
  passwordSha1: rules.string,
  port,
  queryFormat: rules.function,
  rowsAsArray: bool,
  socketPath: rules.string,
  ssl: any,
  stringifyObjects: bool,
  supportBigNumbers: bool,
  timezone: rules.string,
  trace: bool,
  typeCast: any,
  user: rules.string,
};

const adapterRules: Record<string, Rule> = {
  uri: rules.string,
  name: rules.string,
  pool: plainObject,
  reset: rules.oneOf('always', 'dirty', 'never'),
  session: plainObject,
  onConnect: rules.function,
};

const allRules: Record<string, Rule> = { ...connectionRules, ...adapterRules };

/** The options with the URI folded in and every check passed. */
export interface ResolvedMysqlOptions {
  readonly name: string;
  /** What `mysql2.createConnection` gets (password included: never print this object). */
  readonly connection: ConnectionOptions;
  readonly pool: Omit<PoolOptions, 'name' | 'kind'>;
  readonly reset: ResetPolicy;
  /** `SET NAMES ..., @@SESSION.x = ...`: run on connect and after each reset. */
  readonly setupSql: string;
  readonly onConnect: ((connection: Connection) => unknown) | undefined;
  /** `host:port` (or the socket path), `user` and `database`: what errors may say about the server. */
  readonly where: string;
  /** The passwords given, to scrub from any text custodian shows. */
  readonly secrets: readonly string[];
}

const WHERE = 'createMysql()';

/** mysql2's options that hold a password: their values never appear in an error. */
const SECRET_KEYS: readonly string[] = ['password', 'password1', 'password2', 'password3', 'passwordSha1'];

/** A secret option of the wrong type: named, its value not shown. */
function checkSecrets(options: Record<string, unknown>, from: string): void {
  for (const key of SECRET_KEYS) {
    const value = options[key];
    if (value === undefined || typeof value === 'string') continue;
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new TypeError(`${WHERE}: option '${key}'${from} must be a string, got ${kind} (its value is not shown: it is a secret)`);
  }
}

/** mysql2's default collation (lib/connection_config.js), re-applied after a reset when none is configured. */
const DEFAULT_COLLATION = 'UTF8MB4_UNICODE_CI';

/**
 * Parses a `mysql://` URI the way mysql2 does (`ConnectionConfig.parseUrl`), but with errors that
 * never repeat the URI (it holds the password).
 */
function parseUri(uri: string): Record<string, unknown> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new TypeError(
      `${WHERE}: option 'uri' is not a valid URI (expected mysql://user:password@host:port/database); its text is not shown, since it may hold a password`,
    );
  }
  if (url.protocol !== 'mysql:') {
    throw new TypeError(`${WHERE}: option 'uri' must start with mysql://, got ${JSON.stringify(url.protocol + '//')}`);
  }
  if (url.hostname === '') throw new TypeError(`${WHERE}: option 'uri' names no host (expected mysql://user:password@host:port/database)`);
  const host = decodeURIComponent(url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname);
  const out: Record<string, unknown> = { host };
  if (url.port !== '') out['port'] = Number(url.port);
  if (url.username !== '') out['user'] = decodeURIComponent(url.username);
  if (url.password !== '') out['password'] = decodeURIComponent(url.password);
  const database = decodeURIComponent(url.pathname.slice(1));
  if (database !== '') out['database'] = database;
  for (const [key, value] of url.searchParams) {
    if (key in out) continue; // the URI's own parts win (a ?password= counts when the URI has none before the @)
    if (SECRET_KEYS.includes(key)) {
      out[key] = value; // a password of digits is still a string, and is never parsed, so never echoed
      continue;
    }
    let parsed: unknown = value;
    try {
      parsed = JSON.parse(value); // as mysql2 does: ?connectTimeout=2000 is a number
    } catch {
      // a plain string
    }
    out[key] = parsed;
  }
  return out;
}

function checkKeys(options: Record<string, unknown>, from: string): void {
  for (const key of Object.keys(options)) {
    if (options[key] === undefined) continue;
    const instead = (POOL_INSTEAD as Record<string, string | undefined>)[key];
    if (instead !== undefined) throw new TypeError(`${WHERE}: option '${key}'${from} is mysql2's; here use ${instead}`);
  }
}

/** Checks everything and folds the URI in; throws a TypeError naming the first bad option. */
export function resolveMysqlOptions(input: unknown): ResolvedMysqlOptions {
  const given: unknown = typeof input === 'string' ? { uri: input } : input;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new TypeError(`${WHERE}: options must be an object or a mysql:// URI string, got ${describe(given)}`);
  }
  const o = given as Record<string, unknown>;
  checkKeys(o, '');
  checkSecrets(o, '');
  validateOptions(WHERE, o, allRules);
  const fromUri = typeof o['uri'] === 'string' ? parseUri(o['uri']) : {};
  checkKeys(fromUri, ' (in the URI)');
  for (const [key, value] of Object.entries(fromUri)) {
    const rule = connectionRules[key];
    if (rule === undefined) throw new TypeError(`${WHERE}: unknown option '${key}' in the URI's query string`);
    const expected = rule(value);
    if (expected !== undefined)
      throw new TypeError(
        `${WHERE}: option '${key}' in the URI must be ${expected}, got ${SECRET_KEYS.includes(key) ? 'a value not shown' : describe(value)}`,
      );
  }

  const connection: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fromUri)) connection[key] = value;
  for (const key of Object.keys(connectionRules)) if (o[key] !== undefined) connection[key] = o[key];
  if (typeof connection['port'] === 'string') connection['port'] = Number(connection['port']);

  const poolOptions = (o['pool'] ?? {}) as Record<string, unknown>;
  for (const key of ['name', 'kind']) {
    if (poolOptions[key] !== undefined)
      throw new TypeError(`${WHERE}: option 'pool.${key}' is set by the adapter; use the top-level 'name'`);
  }

  const session = (o['session'] ?? {}) as Record<string, unknown>;
  const assignments: string[] = [];
  const collation = String(connection['charset'] ?? DEFAULT_COLLATION).toLowerCase();
  const underscore = collation.indexOf('_');
  // A collation's charset is its first word (utf8mb4_unicode_ci -> utf8mb4); a bare charset name has none.
  assignments.push(underscore === -1 ? `NAMES ${collation}` : `NAMES ${collation.slice(0, underscore)} COLLATE ${collation}`);
  for (const [key, value] of Object.entries(session)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new TypeError(
        `${WHERE}: option 'session' has a key ${JSON.stringify(key)} that is not a system variable name (letters, digits, _)`,
      );
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new TypeError(`${WHERE}: option 'session.${key}' must be a string, a number or a boolean, got ${describe(value)}`);
    }
    if (typeof value === 'string' && value.includes('\0'))
      throw new TypeError(`${WHERE}: option 'session.${key}' must not contain a NUL character`);
    if (typeof value === 'number' && !Number.isFinite(value))
      throw new TypeError(`${WHERE}: option 'session.${key}' must be a finite number, got ${value}`);
    assignments.push(`@@SESSION.${key} = ${literal(value)}`);
  }

  const host = typeof connection['host'] === 'string' ? connection['host'] : 'localhost';
  const where =
    typeof connection['socketPath'] === 'string'
      ? `${connection['socketPath']}`
      : `${host}:${typeof connection['port'] === 'number' ? connection['port'] : 3306}`;
  const who = `${where}${typeof connection['user'] === 'string' ? ` as ${connection['user']}` : ''}${typeof connection['database'] === 'string' ? `, database ${connection['database']}` : ''}`;
  const secrets = SECRET_KEYS.map((k) => connection[k]).filter((v): v is string => typeof v === 'string' && v !== '');

  return {
    name: (o['name'] as string | undefined) ?? 'mysql',
    connection: connection as ConnectionOptions,
    pool: poolOptions as Omit<PoolOptions, 'name' | 'kind'>,
    reset: (o['reset'] as ResetPolicy | undefined) ?? 'dirty',
    setupSql: `SET ${assignments.join(', ')}`,
    onConnect: o['onConnect'] as ResolvedMysqlOptions['onConnect'],
    where: who,
    secrets,
  };
}

/** A SQL literal for a session value: strings quoted, with quotes and backslashes escaped (NUL refused at validation). */
function literal(value: SessionValue): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'boolean') return value ? 'ON' : 'OFF';
  return `'${value.replace(/['\\]/g, (c) => `\\${c}`)}'`;
}

/** Replaces every configured password in `text` with `***`: errors and reports never show one. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('***');
  return out;
}
