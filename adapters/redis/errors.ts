/**
 * The adapter's error, and the scrubbing that keeps passwords out of every error it raises or passes on.
 */
import { CustodianError } from '../../src/index.js';

/**
 * Redis could not be reached, or a connection to it was lost: names the adapter and the address
 * (`host:port`, never the URL). `cause` is the socket's or ioredis's error, scrubbed of the password.
 */
export class RedisConnectionError extends CustodianError {
  override readonly name = 'RedisConnectionError';
  readonly code = 'ERR_CUSTODIAN_REDIS_CONNECTION';
  constructor(
    message: string,
    /** `host:port` or the socket path. */
    readonly address: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Fields of a socket error worth keeping (`connect ECONNREFUSED 127.0.0.1:6390` has them). */
const KEPT = ['code', 'errno', 'syscall', 'address', 'port'] as const;

/**
 * A copy of `error` that carries no password: its message with every secret replaced by `***`,
 * the socket fields, and not ioredis's `command` (whose args hold `HELLO 3 AUTH user password`).
 */
export function scrub(error: unknown, secrets: readonly string[]): Error {
  const source = error instanceof Error ? error : new Error(String(error));
  const copy = new Error(hide(source.message, secrets));
  copy.name = source.name;
  copy.stack = `${copy.name}: ${copy.message}`; // the original stack is ioredis's internals, and its first line is the message
  for (const key of KEPT) {
    const value = (source as unknown as Record<string, unknown>)[key];
    if (value !== undefined) (copy as unknown as Record<string, unknown>)[key] = value;
  }
  return copy;
}

/** `text` with every secret replaced by `***`. */
export function hide(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('***');
  return out;
}

/** The error's text, for a message: `connect ECONNREFUSED 127.0.0.1:6390`, scrubbed. */
export function reasonOf(error: unknown, secrets: readonly string[]): string {
  const text = error instanceof Error ? error.message : String(error);
  return hide(text, secrets);
}
