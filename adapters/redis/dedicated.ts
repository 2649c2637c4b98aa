/**
 * Dedicated connections: how one is opened, how the adapter knows what state its borrower left it
 * in, how it is put back (reset) and how it is got rid of.
 *
 * The adapter knows a connection's state by watching every command it sends: ioredis sends each
 * one through `sendCommand`, which the adapter wraps on each dedicated connection. That is the only
 * way to know under RESP3 (ioredis 6's default), where `redis.mode` never says "subscriber". The
 * wrap costs a switch on the command's name; the reset of a connection nobody dirtied sends nothing.
 *
 * This reads three fields of ioredis 6 that are not in its types: `commandQueue` (commands written
 * and awaiting their reply), and a command's `_commandTimeoutTimer` / `_blockingTimeoutTimer`.
 * The tests against the real Redis fail if a later ioredis changes them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { Redis } from 'ioredis';
import { LATE, noop, within } from '../../src/internal.js';
import { RedisConnectionError, reasonOf, scrub } from './errors.js';
import { DEDICATED, ioredisOptions, type ResolvedRedisOptions } from './options.js';

/** What the adapter reads of an ioredis command. */
interface Command {
  readonly name: string;
  readonly args: unknown[];
  readonly callback?: unknown;
  readonly _commandTimeoutTimer?: unknown;
  readonly _blockingTimeoutTimer?: unknown;
  readonly promise: Promise<unknown>;
  resolve: (value: unknown) => unknown;
  reject: (error: unknown) => unknown;
}

/** What the adapter reads of an ioredis client beyond its public API. */
interface Internals {
  readonly commandQueue: {
    readonly length: number;
    peekAt(index: number): { readonly command: Command } | undefined;
    peekBack(): { readonly command: Command } | undefined;
  };
  readonly stream: { readonly writable: boolean; destroy(): void } | undefined;
  sendCommand(command: Command, stream?: unknown, node?: unknown): unknown;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

// What a borrower may have changed, to be undone on release.
const MULTI = 1;
const WATCH = 2;
const SUBSCRIBED = 4;
const SELECTED = 8;

/** Commands that may block the connection indefinitely (ioredis's BLOCKING_COMMANDS, and WAIT). */
const BLOCKING = new Set([
  'blpop',
  'brpop',
  'brpoplpush',
  'blmove',
  'blmovem',
  'bzpopmin',
  'bzpopmax',
  'bzmpop',
  'blmpop',
  'xread',
  'xreadgroup',
  'wait',
  'waitaof',
]);

/** Events ioredis emits for pub/sub messages: delivered in the subscriber's async context. */
const MESSAGE_EVENTS = new Set<string | symbol>(['message', 'messageBuffer', 'pmessage', 'pmessageBuffer', 'smessage', 'smessageBuffer']);

type Run = <R>(fn: () => R) => R;

/** What the adapter knows of one dedicated connection. */
export class ConnectionState {
  /** MULTI | WATCH | SUBSCRIBED | SELECTED: what the reset must undo. */
  dirty = 0;
  /** The database selected last (SELECT), when SELECTED; NaN when unknown (a SELECT queued inside MULTI). */
  selected = 0;
  /** Why the connection's state cannot be restored (MONITOR, CLIENT REPLY OFF, a client-side timeout...): it is destroyed on release. */
  unknown: string | undefined = undefined;
  /** What the borrower subscribed to, by kind: left by name on release (ioredis 6 mismatches replies to a bare UNSUBSCRIBE when several kinds are subscribed). */
  readonly channels: { subscribe: Set<string>; psubscribe: Set<string>; ssubscribe: Set<string> } = {
    subscribe: new Set(),
    psubscribe: new Set(),
    ssubscribe: new Set(),
  };
  /** The async context of the SUBSCRIBE: messages run there. */
  context: Run | undefined = undefined;
  /** The listeners present once connected (the adapter's, ioredis's): a borrower's others are removed on release. */
  readonly baseline = new Map<string | symbol, readonly unknown[]>();
}

const states = new WeakMap<Redis, ConnectionState>();

/** The state of a dedicated connection, or undefined for a client that is not one. */
export function stateOf(client: Redis): ConnectionState | undefined {
  return states.get(client);
}

/** Marks the connection to be destroyed on release, saying why (the first reason is kept). */
function spoil(state: ConnectionState, why: string): void {
  state.unknown ??= why;
}

/** Lowercase: ioredis keeps the name as the caller wrote it (`call('MULTI')`). */
const lower = (name: string) => (name.charCodeAt(0) < 97 ? name.toLowerCase() : name);

/**
 * Notes what `command` does to the connection's state, before it is sent. Returns what it undoes
 * once it succeeds (EXEC, DISCARD, UNWATCH): an EXEC without MULTI leaves a WATCH in place.
 */
function observe(state: ConnectionState, command: Command): number {
  switch (lower(command.name)) {
    case 'multi':
      state.dirty |= MULTI;
      break;
    case 'exec':
    case 'discard':
      return MULTI | WATCH;
    case 'watch':
      state.dirty |= WATCH;
      break;
    case 'unwatch':
      return WATCH;
    case 'subscribe':
    case 'psubscribe':
    case 'ssubscribe': {
      state.dirty |= SUBSCRIBED;
      const names = state.channels[lower(command.name) as keyof ConnectionState['channels']];
      for (const arg of command.args) names.add(String(arg));
      // Messages come in on the socket's (neutral) context: run them where the borrower subscribed.
      state.context ??= AsyncLocalStorage.snapshot();
      break;
    }
    case 'select': {
      const db = Number(command.args[0]);
      if (!Number.isInteger(db)) spoil(state, 'SELECT with a database that is not a number');
      else {
        state.dirty |= SELECTED;
        // Queued inside MULTI, it takes effect at EXEC, or never (DISCARD): which database is
        // selected is then unknown, and the reset selects the configured one whatever it is.
        state.selected = state.dirty & MULTI ? Number.NaN : db;
      }
      break;
    }
    case 'monitor':
      spoil(state, 'MONITOR was sent on it (a monitoring connection cannot be taken out of it)');
      break;
    case 'reset':
      // RESET de-authenticates, switches to RESP2 and selects db 0 behind ioredis's back.
      spoil(state, 'RESET was sent on it (ioredis no longer knows its protocol, user or database)');
      break;
    case 'hello':
    case 'auth':
      spoil(state, `${lower(command.name).toUpperCase()} was sent on it (its protocol or user may have changed)`);
      break;
    case 'client': {
      const sub = String(command.args[0] ?? '').toLowerCase();
      const arg = String(command.args[1] ?? '').toLowerCase();
      // ioredis pairs replies with commands in order; with replies off or skipped they no longer line up.
      if (sub === 'reply' && arg !== 'on')
        spoil(state, `CLIENT REPLY ${arg.toUpperCase()} was sent on it (its replies no longer line up with its commands)`);
      else if (sub === 'tracking') spoil(state, 'CLIENT TRACKING was sent on it');
      break;
    }
    default:
  }
  return 0;
}

/** Watches for a client-side timeout (commandTimeout, blockingTimeout): the command may still be queued on the server. */
function watchTimers(state: ConnectionState, command: Command): void {
  if (command._commandTimeoutTimer !== undefined) {
    const reject = command.reject;
    command.reject = (error: unknown) => {
      if (error instanceof Error && error.message === 'Command timed out') {
        spoil(state, `${command.name.toUpperCase()} timed out client-side (commandTimeout) and may still run on the server`);
      }
      return reject(error);
    };
  }
  if (command._blockingTimeoutTimer !== undefined) {
    const resolve = command.resolve;
    command.resolve = (value: unknown) => {
      // ioredis clears the timer field before it resolves on timeout; a reply from the server finds it set.
      if (command._blockingTimeoutTimer === undefined) {
        spoil(state, `${command.name.toUpperCase()} timed out client-side (blockingTimeout) and may still be blocked on the server`);
      }
      return resolve(value);
    };
  }
}

/** Wraps the connection's sendCommand and emit: see the module comment. */
function instrument(client: Redis, state: ConnectionState): void {
  const self = client as unknown as Internals;
  const send = self.sendCommand;
  const timed = client.options.commandTimeout !== undefined || (client.options.blockingTimeout ?? 0) > 0;
  self.sendCommand = function (this: Internals, command: Command, stream?: unknown, node?: unknown): unknown {
    const undoes = observe(state, command);
    const result = send.call(this, command, stream, node);
    if (timed) watchTimers(state, command);
    if (undoes !== 0) {
      (result as Promise<unknown>).then(() => {
        state.dirty &= ~undoes;
      }, noop);
    }
    return result;
  };
  const emit = self.emit;
  self.emit = function (this: Internals, event: string | symbol, ...args: unknown[]): boolean {
    const run = state.context;
    if (run !== undefined && MESSAGE_EVENTS.has(event)) return run(() => emit.call(this, event, ...args));
    return emit.call(this, event, ...args);
  };
}

/** What opening a dedicated connection needs. */
export interface OpenContext {
  readonly options: ResolvedRedisOptions;
  /** The connection's socket closed: the pool must not lend it again. */
  readonly closed: (client: Redis) => void;
}

/**
 * Opens a dedicated connection (called by the pool, in the root async context). Rejects within the
 * connect timeout with a `RedisConnectionError` naming the address; a connection that failed leaves
 * no socket and no reconnect timer behind (it never reconnects: DEDICATED).
 */
export async function openDedicated(ctx: OpenContext): Promise<Redis> {
  const o = ctx.options;
  const client = new Redis(ioredisOptions({ ...o.connection, ...DEDICATED }));
  const state = new ConnectionState();
  let firstError: unknown;
  // Also after the open: without a listener, ioredis prints every connection error to stderr.
  client.on('error', (error: unknown) => {
    firstError ??= error;
  });
  let outcome: unknown;
  let failure: unknown;
  try {
    // connectTimeout bounds the TCP connect in ioredis; this bounds the handshake too (a server that accepts and never answers).
    outcome = await within(client.connect(), o.connectTimeoutMs);
  } catch (error) {
    failure = firstError ?? error;
  }
  if (failure !== undefined || outcome === LATE) {
    drop(client);
    const why = outcome === LATE ? `no answer within ${o.connectTimeoutMs} ms` : reasonOf(failure, o.secrets);
    throw new RedisConnectionError(
      `redis "${o.name}": could not open a dedicated connection to ${o.address}: ${why}. Is Redis running there, and reachable from this host?`,
      o.address,
      failure === undefined ? undefined : { cause: scrub(failure, o.secrets) },
    );
  }
  client.once('close', () => ctx.closed(client));
  instrument(client, state);
  for (const event of client.eventNames()) state.baseline.set(event, client.rawListeners(event));
  states.set(client, state);
  return client;
}

/**
 * Puts a returned connection back as it was lent: an open MULTI discarded, WATCH cleared,
 * subscriptions left, the configured database selected, the borrower's listeners removed. Sends
 * nothing when the borrower changed none of it (returns undefined, so the pool reuses it at once).
 * Waits first for the replies to commands still in flight (`return conn.get(k)` in an `await
 * using` block). Throws, so that the pool destroys the connection instead, when it is not `ready`,
 * when a blocking command is still in flight, or when its state is unknown (a client-side timeout,
 * MONITOR, CLIENT REPLY OFF...). The pool bounds the whole reset by its acquireTimeoutMs.
 */
export function resetDedicated(client: Redis, db: number): undefined | Promise<void> {
  const state = states.get(client);
  if (state === undefined) throw new Error('not a dedicated connection of this adapter');
  if (client.status !== 'ready') throw new Error(`its status is '${client.status}', not 'ready'`);
  // disconnect() or a server's FIN ends the socket at once; ioredis's status follows a tick later.
  if ((client as unknown as Internals).stream?.writable !== true) throw new Error('its socket is closing');
  if (state.unknown !== undefined) throw new Error(state.unknown);
  const queue = (client as unknown as Internals).commandQueue;
  if (queue.length > 0) {
    // `return conn.get(k)` inside `await using`: replies come in order, so once the last is in,
    // the connection is idle. A blocking command may never answer: that connection goes.
    for (let i = 0; i < queue.length; i++) {
      const name = lower(queue.peekAt(i)?.command.name ?? '');
      if (BLOCKING.has(name)) throw new Error(`${name.toUpperCase()} was still blocked on it`);
    }
    const last = queue.peekBack()?.command.promise;
    return Promise.resolve(last)
      .then(noop, noop)
      .then(() => resetDedicated(client, db));
  }
  dropListeners(client, state);
  state.context = undefined;
  const dirty = state.dirty;
  if (dirty === 0 || (dirty === SELECTED && state.selected === db)) {
    state.dirty = 0;
    return undefined;
  }
  return undo(client, state, dirty, db);
}

async function undo(client: Redis, state: ConnectionState, dirty: number, db: number): Promise<void> {
  // In this order: inside MULTI every other command would only be queued; under RESP2, ioredis
  // refuses UNWATCH and SELECT while subscribed.
  if (dirty & MULTI) {
    // A MULTI that failed left no transaction: DISCARD says so, which is clean too. DISCARD also unwatches.
    await client.discard().catch((error: unknown) => expectError(error, 'DISCARD without MULTI'));
  }
  if (dirty & SUBSCRIBED) {
    const { subscribe, psubscribe, ssubscribe } = state.channels;
    const left: Promise<unknown>[] = [];
    if (subscribe.size > 0) left.push(client.unsubscribe(...subscribe));
    if (psubscribe.size > 0) left.push(client.punsubscribe(...psubscribe));
    if (ssubscribe.size > 0) left.push(client.sunsubscribe(...ssubscribe));
    await Promise.all(left);
    subscribe.clear();
    psubscribe.clear();
    ssubscribe.clear();
  }
  const last: Promise<unknown>[] = [];
  if (dirty & WATCH) last.push(client.unwatch());
  if (dirty & SELECTED && state.selected !== db) last.push(client.select(db));
  await Promise.all(last);
  state.dirty = 0;
  state.selected = db;
}

function expectError(error: unknown, text: string): void {
  if (!(error instanceof Error && error.message.includes(text))) throw error;
}

/** Removes the listeners a borrower added (a `message` handler must not hear the next borrower's messages). */
function dropListeners(client: Redis, state: ConnectionState): void {
  const names = client.eventNames();
  if (names.length === state.baseline.size && names.every((event) => client.listenerCount(event) === state.baseline.get(event)?.length)) {
    return; // nothing added: the common case, without copying the listener arrays
  }
  for (const event of names) {
    const kept = state.baseline.get(event);
    const now = client.rawListeners(event);
    if (kept !== undefined && now.length === kept.length) continue;
    for (const listener of now) {
      if (kept === undefined || !kept.includes(listener)) client.removeListener(event, listener as (...args: unknown[]) => void);
    }
  }
}

/**
 * Closes a dedicated connection for good and resolves once its socket is gone: QUIT when it is
 * idle and ready (the server frees it at once), else the socket is dropped. Never rejects.
 */
export async function closeDedicated(client: Redis, quitTimeoutMs: number): Promise<void> {
  if (client.status === 'end') return;
  const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
  const idle = (client as unknown as Internals).commandQueue.length === 0;
  if (client.status === 'ready' && idle && stateOf(client)?.unknown === undefined) {
    try {
      if ((await within(client.quit(), quitTimeoutMs)) === LATE) drop(client);
    } catch {
      drop(client);
    }
  } else drop(client);
  if ((await within(ended, quitTimeoutMs)) === LATE) drop(client);
}

/**
 * Closes the socket now, for good: disconnect() stops ioredis from reconnecting but only ends the
 * socket, which then waits up to disconnectTimeout for a FIN a hung server never sends.
 */
function drop(client: Redis): void {
  client.disconnect();
  (client as unknown as Internals).stream?.destroy();
}
