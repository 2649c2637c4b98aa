/**
 * What `createRedis` accepts: ioredis options or a `redis://` URL, the adapter's own `name` and the
 * dedicated connections' `pool` options. Everything is checked before any socket is opened, and
 * nothing here ever puts a password into a message.
 */
import type { RedisOptions } from 'ioredis';
import type { PoolOptions } from '../../src/index.js';
import { describe, rules, validateOptions, type Rule } from '../../src/internal.js';

/**
 * The ioredis options the adapter passes on (see ioredis's `RedisOptions`). Left out on purpose:
 * `lazyConnect` and `monitor` (the adapter decides when and how connections open), `sentinels` and
 * the other Sentinel options, `Connector`, and ioredis's `name` (the Sentinel master's name; here
 * `name` names the adapter), and `replyMapping` ('resp3' would change the type of every reply).
 */
const IOREDIS_KEYS = [
  'host',
  'port',
  'path',
  'family',
  'tls',
  'username',
  'password',
  'db',
  'connectionName',
  'connectTimeout',
  'disconnectTimeout',
  'commandTimeout',
  'blockingTimeout',
  'blockingTimeoutGrace',
  'socketTimeout',
  'keepAlive',
  'noDelay',
  'keyPrefix',
  'stringNumbers',
  'protocol',
  'enableReadyCheck',
  'readOnly',
  'scripts',
  'disableClientInfo',
  'clientInfoTag',
  'showFriendlyErrorStack',
  'maxLoadingRetryTime',
  // The shared client's alone: every dedicated connection gets the adapter's values (see DEDICATED).
  'retryStrategy',
  'reconnectOnError',
  'maxRetriesPerRequest',
  'enableOfflineQueue',
  'autoResendUnfulfilledCommands',
  'autoResubscribe',
  'enableAutoPipelining',
  'autoPipeliningIgnoredCommands',
] as const satisfies readonly (keyof RedisOptions)[];

/** The ioredis options `createRedis` takes. */
export type RedisConnectionOptions = Pick<RedisOptions, (typeof IOREDIS_KEYS)[number]>;

/** Options of `createRedis`. */
export interface RedisAdapterOptions extends RedisConnectionOptions {
  /**
   * `redis://[[user]:password@]host[:port][/db]` (or `rediss://` for TLS). Options given beside it
   * win over what it says.
   */
  url?: string | undefined;
  /** Names the adapter in errors, reports, `inspect()` and the pool's events. Default `redis`. */
  name?: string | undefined;
  /**
   * The pool of dedicated connections (`acquire()`): custodian pool options. Defaults: `max` 10,
   * `acquireTimeoutMs` the connect timeout plus 5 s, `idleTimeoutMs` 30 s.
   */
  pool?: Omit<PoolOptions, 'name' | 'kind'> | undefined;
}

/**
 * What a dedicated connection always gets, whatever the options say: it never reconnects (a killed
 * connection stays dead, so the pool sees it and replaces it), never queues a command while it is
 * not connected, never re-sends a command that was in flight on a socket that died (that command
 * may or may not have run: the caller hears of it), never resubscribes behind the borrower's back.
 */
export const DEDICATED = {
  lazyConnect: true,
  retryStrategy: () => null,
  reconnectOnError: null,
  maxRetriesPerRequest: 0,
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  autoResubscribe: false,
  enableAutoPipelining: false,
} as const satisfies RedisOptions;

/** The options with the URL folded in and the adapter's defaults filled. */
export interface ResolvedRedisOptions {
  readonly name: string;
  /** `host:port` or the socket path: for messages (never the URL, which may carry a password). */
  readonly address: string;
  /** The database every connection starts in, and every dedicated one is put back to. */
  readonly db: number;
  readonly connectTimeoutMs: number;
  /** What to give ioredis (the URL parsed in). */
  readonly connection: RedisOptions;
  readonly pool: PoolOptions;
  /** The password, to scrub from any error text that might carry it. */
  readonly secrets: readonly string[];
}

const WHERE = 'createRedis()';

const anything: Rule = () => undefined;
const bool: Rule = (v) => (typeof v === 'boolean' ? undefined : 'true or false');
const fnOrNull: Rule = (v) => (v === null || typeof v === 'function' ? undefined : 'a function or null');
const int: Rule = (v) => (typeof v === 'number' && Number.isInteger(v) ? undefined : 'a whole number');

const optionRules: Record<string, Rule> = {
  url: rules.string,
  name: rules.string,
  pool: (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? undefined : 'an object of pool options, like { max: 10 }'),
  host: rules.string,
  port: (v) => (typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65536 ? undefined : 'a port number from 1 to 65535'),
  path: rules.string,
  family: (v) => (v === 0 || v === 4 || v === 6 ? undefined : '0, 4 or 6'),
  tls: (v) => (typeof v === 'object' && v !== null ? undefined : 'an object of TLS options'),
  username: rules.string,
  password: rules.string,
  db: (v) => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? undefined : 'a database number from 0'),
  connectionName: rules.string,
  connectTimeout: rules.positiveMs,
  disconnectTimeout: rules.ms,
  commandTimeout: rules.positiveMs,
  blockingTimeout: rules.ms,
  blockingTimeoutGrace: rules.ms,
  socketTimeout: rules.positiveMs,
  keepAlive: rules.ms,
  noDelay: bool,
  keyPrefix: rules.string,
  stringNumbers: bool,
  protocol: (v) => (v === 2 || v === 3 ? undefined : '2 or 3'),
  enableReadyCheck: bool,
  readOnly: bool,
  scripts: (v) => (typeof v === 'object' && v !== null ? undefined : 'an object of script definitions'),
  disableClientInfo: bool,
  clientInfoTag: rules.string,
  showFriendlyErrorStack: bool,
  maxLoadingRetryTime: rules.ms,
  retryStrategy: fnOrNull,
  reconnectOnError: fnOrNull,
  maxRetriesPerRequest: (v) => (v === null ? undefined : int(v)),
  enableOfflineQueue: bool,
  autoResendUnfulfilledCommands: bool,
  autoResubscribe: bool,
  enableAutoPipelining: bool,
  autoPipeliningIgnoredCommands: (v) => (Array.isArray(v) ? undefined : 'an array of command names'),
};
for (const key of IOREDIS_KEYS) optionRules[key] ??= anything;

/** `redis://user:S3cret@host` → `redis://user:***@host`, also for text that does not parse as a URL. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i, (_all, scheme: string, auth: string) => {
    const colon = auth.indexOf(':');
    return `${scheme}${colon === -1 ? '***' : `${auth.slice(0, colon)}:***`}@`;
  });
}

/** Parses a `redis://` or `rediss://` URL; a bad one throws a TypeError that shows it with the password hidden. */
function parseUrl(url: string): RedisOptions {
  let parsed: URL;
  const bad = (why: string) => new TypeError(`${WHERE}: option 'url' ${why}, got ${describe(redactUrl(url))}`);
  try {
    parsed = new URL(url);
  } catch {
    throw bad('must be a URL like redis://host:6379/0');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw bad(`must start with redis:// or rediss:// (not ${parsed.protocol}//)`);
  if (parsed.hostname === '') throw bad('must name a host');
  if (parsed.search !== '') throw bad('must not carry query parameters (give them as options)');
  const out: RedisOptions = { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') };
  if (parsed.port !== '') out.port = Number(parsed.port);
  if (parsed.username !== '') out.username = decodeURIComponent(parsed.username);
  if (parsed.password !== '') out.password = decodeURIComponent(parsed.password);
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '') {
    if (!/^\d+$/.test(db)) throw bad(`must end with a database number (/0, /1, ...), not /${db}`);
    out.db = Number(db);
  }
  if (parsed.protocol === 'rediss:') out.tls = {};
  return out;
}

/** Checks `createRedis`'s argument, throwing a TypeError that names the first bad option; fills in defaults. */
export function resolveRedisOptions(input: unknown): ResolvedRedisOptions {
  const given: unknown = typeof input === 'string' ? { url: input } : input;
  if (given === undefined) throw new TypeError(`${WHERE}: pass a redis:// URL or an options object ({ host, port, ... })`);
  const password = (given as { password?: unknown } | null)?.password;
  // Checked apart: a bad password must not be shown in the message.
  if (password !== undefined && typeof password !== 'string') {
    throw new TypeError(`${WHERE}: option 'password' must be a string (its value is not shown)`);
  }
  validateOptions(WHERE, given, optionRules);
  const o = given as RedisAdapterOptions;
  const fromUrl = o.url === undefined ? {} : parseUrl(o.url);
  const connection: Record<string, unknown> = { ...fromUrl };
  for (const key of IOREDIS_KEYS) if (o[key] !== undefined) connection[key] = o[key];
  const c = connection as RedisOptions;
  const name = o.name ?? 'redis';
  const connectTimeoutMs = c.connectTimeout ?? 10_000;
  c.connectTimeout = connectTimeoutMs;
  const address = c.path !== undefined ? c.path : `${c.host ?? 'localhost'}:${c.port ?? 6379}`;
  const secrets = [c.password].filter((s): s is string => typeof s === 'string' && s !== '');
  const pool: PoolOptions = { acquireTimeoutMs: connectTimeoutMs + 5_000, ...o.pool, name, kind: 'redis connection' };
  const givenPool = o.pool as Record<string, unknown> | undefined;
  if (givenPool !== undefined && ('name' in givenPool || 'kind' in givenPool)) {
    throw new TypeError(`${WHERE}: option 'pool' must not set name or kind (the pool is named by option 'name')`);
  }
  return { name, address, db: c.db ?? 0, connectTimeoutMs, connection: c, pool, secrets };
}

/** What ioredis's constructor takes for a `Redis<'legacy'>` (replyMapping 'resp3' would change every reply's type). */
type IoredisOptions = RedisOptions & { replyMapping?: 'legacy' };

/** The options as ioredis's constructor takes them. */
export function ioredisOptions(options: RedisOptions): IoredisOptions {
  return options as IoredisOptions;
}
