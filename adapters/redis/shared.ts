/**
 * The shared client: one multiplexed ioredis connection for ordinary commands, opened in the root
 * async context, reconnecting on its own (ioredis's retryStrategy) until the adapter closes.
 *
 * Two things differ from a bare `new Redis()`:
 *  - `maxRetriesPerRequest` defaults to 0: while Redis is down, a command fails when the connection
 *    attempt it waited for fails (at once for a refused port, after `connectTimeout` for a host that
 *    does not answer), instead of after 20 attempts (over a minute). It is not re-sent on the next
 *    socket either: a command in flight on a socket that died fails, and the caller decides.
 *  - a command sent while the client is not connected fails with a `RedisConnectionError` that
 *    names the address and the socket's error, instead of "Reached the max retries per request limit".
 */
import { Redis } from 'ioredis';
import { LATE, within } from '../../src/internal.js';
import { RedisConnectionError, reasonOf, scrub } from './errors.js';
import { ioredisOptions, type ResolvedRedisOptions } from './options.js';

/** What the adapter reads of an ioredis command and client beyond their types (ioredis 6). */
interface Command {
  readonly name: string;
  readonly callback?: unknown;
}
interface Internals {
  readonly commandQueue: { readonly length: number };
  readonly offlineQueue: { readonly length: number };
  readonly stream: { destroy(): void } | undefined;
  sendCommand(command: Command, stream?: unknown, node?: unknown): unknown;
}

/** The errors ioredis fails a command with when it has no connection to send it on. */
const CONNECTION_ERRORS = ['Connection is closed.', "Stream isn't writeable", 'Reached the max retries per request limit'];

/** The shared client's figures, for stats() and inspect(). */
export interface SharedClientStats {
  /** ioredis's status: `connecting`, `ready`, `reconnecting`, `end`... */
  readonly status: string;
  /** `host:port` or the socket path. */
  readonly address: string;
  readonly db: number;
  /** Commands written and awaiting their reply. */
  readonly inFlight: number;
  /** Commands queued while not connected. */
  readonly queued: number;
  /** Times the connection was lost and ioredis began reconnecting. */
  readonly reconnects: number;
  /** The last error the connection emitted (the password never appears), or null. */
  readonly lastError: string | null;
}

export class SharedClient {
  readonly client: Redis;
  readonly #options: ResolvedRedisOptions;
  #reconnects = 0;
  #lastError: unknown = undefined;
  #closing: Promise<void> | undefined = undefined;

  /** Call in the root async context: the socket's events and ioredis's reconnect timers run where it was made. */
  constructor(options: ResolvedRedisOptions) {
    this.#options = options;
    const client = new Redis(ioredisOptions({ maxRetriesPerRequest: 0, ...options.connection, lazyConnect: false }));
    this.client = client;
    // Without a listener ioredis prints every connection error to stderr; the adapter keeps the last one for messages and inspect().
    client.on('error', (error: unknown) => {
      this.#lastError = error;
    });
    client.on('reconnecting', () => this.#reconnects++);
    // ioredis's connectTimeout ends at the TCP connect; a server that accepts and never answers
    // (a half-open socket, a hung proxy) would hold the handshake, and every queued command, for good.
    let handshake: NodeJS.Timeout | undefined;
    const ms = options.connectTimeoutMs;
    client.on('connect', () => {
      clearTimeout(handshake);
      handshake = setTimeout(() => {
        if (client.status !== 'connect') return;
        this.#lastError = new Error(`connected, but got no answer to the handshake within ${ms} ms`);
        // This attempt failed: drop the socket now (disconnect() would wait disconnectTimeout for a
        // FIN that a silent server never sends); queued commands fail, and ioredis tries again.
        (client as unknown as Internals).stream?.destroy();
      }, ms);
      handshake.unref();
    });
    const stop = () => clearTimeout(handshake);
    client.on('ready', stop);
    client.on('close', stop);
    const self = client as unknown as Internals;
    const send = self.sendCommand;
    const unreachable = (command: Command) => (error: unknown) => {
      throw this.#explain(command, error);
    };
    const explaining = function (this: Internals, command: Command, stream?: unknown, node?: unknown): unknown {
      const result = send.call(this, command, stream, node);
      // Not for pipelines (stream set: ioredis ignores this promise) nor callbacks (the callback already has the error).
      if (client.status === 'ready' || stream !== undefined || command.callback !== undefined) return result;
      return (result as Promise<unknown>).catch(unreachable(command));
    };
    // Only while not connected: once ready, commands take ioredis's own path, with nothing added.
    self.sendCommand = explaining;
    client.on('ready', () => delete (self as Partial<Internals>).sendCommand);
    client.on('close', () => (self.sendCommand = explaining));
  }

  #explain(command: Command, error: unknown): unknown {
    const message = error instanceof Error ? error.message : '';
    if (!CONNECTION_ERRORS.some((text) => message.startsWith(text))) return error;
    const o = this.#options;
    const socket = this.#lastError === undefined ? reasonOf(error, o.secrets) : reasonOf(this.#lastError, o.secrets);
    const state = this.#closing !== undefined ? 'the adapter was closed' : `the shared client is '${this.client.status}'`;
    return new RedisConnectionError(
      `redis "${o.name}": ${command.name.toUpperCase()} failed: Redis at ${o.address} is unreachable (${socket}); ${state}. Is Redis running there, and reachable from this host?`,
      o.address,
      { cause: scrub(this.#lastError ?? error, o.secrets) },
    );
  }

  stats(): SharedClientStats {
    const self = this.client as unknown as Internals;
    return {
      status: this.#closing !== undefined && this.client.status === 'reconnecting' ? 'end' : this.client.status,
      address: this.#options.address,
      db: this.#options.db,
      inFlight: self.commandQueue.length,
      queued: self.offlineQueue.length,
      reconnects: this.#reconnects,
      lastError: this.#lastError === undefined ? null : reasonOf(this.#lastError, this.#options.secrets),
    };
  }

  /** QUIT (after the commands in flight are answered), or drop the socket; never reconnects afterwards. Resolves once the socket is gone. */
  close(timeoutMs: number): Promise<void> {
    return (this.#closing ??= this.#close(timeoutMs));
  }

  async #close(timeoutMs: number): Promise<void> {
    const client = this.client;
    if (client.status === 'end') return;
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    if (client.status === 'ready') {
      try {
        if ((await within(client.quit(), timeoutMs)) === LATE) client.disconnect();
      } catch {
        client.disconnect();
      }
    } else {
      client.disconnect(); // connecting or reconnecting: stops the retry timer too
      // Waiting to reconnect, the socket is gone already and ioredis emits nothing more.
      if (client.status === 'reconnecting') return;
    }
    if ((await within(ended, timeoutMs)) === LATE) client.disconnect();
  }
}
