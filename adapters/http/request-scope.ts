/**
 * The life of one request's scope, shared by the three integrations: opened before any handler
 * runs, closed when the response has finished (and, for `scoped()`, the listener's promise has
 * settled), or cancelled and closed at once when the client goes away or the `timeout` elapses.
 *
 * One listener per request, on the response's `close` event: Node emits it after `finish` for a
 * completed response and on its own when the connection was cut first, so `writableFinished` at
 * that moment tells the two apart. No closure is allocated per request: the task hangs off the
 * response and the request under symbols, and the listener is one shared function.
 */
import { flattenSuppressed, LeakError, ScopeTimeoutError, type LeakPolicy, type Scope } from '../../src/index.js';
import {
  emitLeakWarning,
  errorText,
  markTask,
  nameLater,
  openRootScope,
  RESOLVED,
  scopeTitle,
  showInInspect,
  warnRelease,
} from '../../src/internal.js';

/** What the integrations need of a response: `ServerResponse`, `Http2ServerResponse`, Express's `res`. */
export interface ResponseLike {
  readonly headersSent: boolean;
  /** `null` while a pipelined response waits for the ones before it on its connection. */
  readonly socket?: object | null | undefined;
  readonly writableFinished?: boolean;
  readonly writableEnded?: boolean;
  on(event: 'close', listener: () => void): unknown;
  destroy(error?: Error): unknown;
}

/** What the integrations need of a request: `IncomingMessage`, `Http2ServerRequest`, Express's `req`. */
export interface RequestLike {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
}

/** Where a request's connection is (Node's requests). */
interface WatchedRequest {
  readonly socket?: WatchedSocket | null | undefined;
}

interface WatchedSocket {
  readonly destroyed?: boolean;
  once?(event: 'close', listener: () => void): unknown;
  off?(event: 'close', listener: () => void): unknown;
}

const kTask = Symbol('custodian.http.task');

/** How a request's scope ended, for inspect(). */
const counts = { inFlight: 0, finished: 0, clientGone: 0, timedOut: 0 };
let shown = false;

/** Lists the adapter's counters in inspect() (once, the first time an integration is made). */
export function showHttpStats(): void {
  if (shown) return;
  shown = true;
  showInInspect({ name: 'custodian/http', kind: 'http requests', stats: () => ({ ...counts }) });
}

/** What a request's scope is waiting for before it closes. */
const RUNNING = 0; // the response has not finished yet
const AWAITING_LISTENER = 1; // the response finished; the listener's promise has not settled
const ENDED = 2;

/**
 * What one integration's requests share, made once per integration (not per request): their
 * options, the public function reports start above, and the integration's ways.
 */
export interface RequestKind {
  readonly timeout: number | undefined;
  /** What every request's scope is opened with: the `leaks` policy, and the integration's own function, above which sites are captured. */
  readonly scopeOptions: { readonly leaks?: LeakPolicy; readonly boundary: (...args: never[]) => unknown };
  /** A better name than `METHOD path`, asked whenever the name is read until it answers (Express's route template, once routed). */
  readonly rename?: ((task: RequestTask) => string | undefined) | undefined;
  /** Ends the response when the timeout cut the request short; by default a 503 or a cut connection (`endTimedOut`). */
  readonly onTimeout?: ((task: RequestTask, error: ScopeTimeoutError) => void) | undefined;
}

/** The options every request of one integration opens its scope with (built once, not per request). */
export function requestScopeOptions(leaks: LeakPolicy | undefined, boundary: (...args: never[]) => unknown): RequestKind['scopeOptions'] {
  return leaks === undefined ? { boundary } : { leaks, boundary };
}

/** One request's scope and how it will end. */
export class RequestTask {
  readonly scope: Scope;
  state: 0 | 1 | 2 = RUNNING;
  /** The listener returned a promise that has not settled yet (scoped() only). */
  listenerPending = false;
  timer: NodeJS.Timeout | undefined = undefined;
  /** The framework's own reply object, when its `onTimeout` needs it (Fastify). */
  reply: unknown = undefined;
  /** A queued pipelined response's connection, watched for its close until the task ends. */
  watched: { readonly socket: WatchedSocket; readonly onClose: () => void } | undefined = undefined;
  readonly kind: RequestKind;
  readonly req: RequestLike;
  readonly res: ResponseLike;

  constructor(req: RequestLike, res: ResponseLike, name: string, kind: RequestKind) {
    this.req = req;
    this.res = res;
    this.kind = kind;
    const timeout = kind.timeout;
    // A root scope, whatever the context the server emits requests in: requests are independent
    // tasks, and a server started inside some scope must not make every request its child.
    // The options were checked when the integration was made; a name(req) that returns no string is shown as one.
    this.scope = openRootScope(kind.scopeOptions, typeof name === 'string' ? name : String(name));
    markTask(this.scope, true);
    const rename = kind.rename;
    if (rename !== undefined) nameLater(this.scope, () => rename(this)); // every report names the route, once routed
    counts.inFlight++;
    (req as { [kTask]?: RequestTask })[kTask] = this;
    (res as { [kTask]?: RequestTask })[kTask] = this;
    res.on('close', onResponseClose); // on, not once: no wrapper allocated per request; close comes once
    // A pipelined request queued behind a slower one has no socket on its response yet, and that
    // response never emits `close` if the connection dies first (Node closes only the request,
    // in abortIncoming, and on Node 20 a request may have closed already, once its body was read):
    // its connection is watched until the task ends.
    if (res.socket === null) {
      const socket = (req as WatchedRequest).socket;
      if (socket !== null && socket !== undefined) this.watchSocket(socket);
    }
    if (timeout !== undefined) this.timer = setTimeout(onTimer, timeout, this, timeout);
  }

  /** The response has finished: close now, or when the listener's promise settles. */
  responseFinished(): void {
    if (this.state !== RUNNING) return;
    if (this.listenerPending) {
      this.state = AWAITING_LISTENER;
      return;
    }
    this.end();
  }

  /** The listener's promise settled (scoped() only). */
  listenerSettled(): void {
    this.listenerPending = false;
    if (this.state === AWAITING_LISTENER) this.end();
  }

  /** Closes after a normal end: what the handlers left behind is reclaimed and reported. */
  end(): void {
    this.state = ENDED;
    this.stopTimer();
    this.unwatchSocket();
    counts.inFlight--;
    counts.finished++;
    markTask(this.scope, false);
    closeQuietly(this.scope);
  }

  /**
   * Cancels the scope (its signal aborts with `reason`, its waiting acquires fail) and closes it at
   * once: the handlers may still be running, so what they hold is destroyed, not handed back.
   */
  cut(reason: Error, counter: 'clientGone' | 'timedOut'): void {
    if (this.state === ENDED) return;
    this.state = ENDED;
    this.stopTimer();
    this.unwatchSocket();
    counts.inFlight--;
    counts[counter]++;
    this.scope.cancel(reason);
    closeQuietly(this.scope);
  }

  /** Watches the connection of a response still queued behind others: if it dies first, the request is cut. */
  private watchSocket(socket: WatchedSocket): void {
    if (typeof socket.once !== 'function') return;
    if (socket.destroyed === true) {
      // Gone already: cut once the constructor is done (the scope must exist to be cut).
      queueMicrotask(() => {
        if (!finished(this.res)) this.cut(clientGone(this.scope), 'clientGone');
      });
      return;
    }
    const onClose = () => {
      this.watched = undefined;
      if (this.state !== ENDED && !finished(this.res)) this.cut(clientGone(this.scope), 'clientGone');
    };
    this.watched = { socket, onClose };
    socket.once('close', onClose);
  }

  private unwatchSocket(): void {
    const watched = this.watched;
    if (watched === undefined) return;
    this.watched = undefined;
    watched.socket.off?.('close', watched.onClose);
  }

  private stopTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

/** The response's `close` listener (one function for every request: `this` is the response). */
function onResponseClose(this: ResponseLike): void {
  const task = (this as { [kTask]?: RequestTask })[kTask];
  if (task === undefined || task.state === ENDED) return;
  if (finished(this)) task.responseFinished();
  else task.cut(clientGone(task.scope), 'clientGone');
}

function onTimer(task: RequestTask, timeout: number): void {
  task.timer = undefined;
  if (task.state === ENDED) return;
  const error = new ScopeTimeoutError(
    `${scopeTitle(task.scope)} timed out after ${timeout} ms (the request's timeout option): its signal aborted, what it held was destroyed, and the response was ended`,
    timeout,
  );
  const waiting = task.state === AWAITING_LISTENER; // the response went out already; only the listener is late
  task.cut(error, 'timedOut');
  if (!waiting) (task.kind.onTimeout ?? endTaskTimedOut)(task, error);
}

/**
 * True when the response was ended and everything handed to the OS. Both flags: HTTP/2's compat
 * response reports `writableFinished` after a client's RST_STREAM too, with `writableEnded` false;
 * an older one may lack `writableFinished`, and a response-like object of a framework one of them.
 */
function finished(res: ResponseLike): boolean {
  return (res.writableEnded ?? res.writableFinished) === true && res.writableFinished !== false;
}

/** The reason a request's scope is cancelled with when the client went away. */
function clientGone(scope: Scope): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0; // the stack would only point into Node's socket code
  try {
    return new DOMException(
      `${scopeTitle(scope)}: the connection closed before the response finished (the client went away, or the response was destroyed); the request was cancelled`,
      'AbortError',
    );
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Closes a request's scope. Its errors have no caller to go to (a response event closed it), so
 * they are reported here: each failed release as a ResourceReleaseWarning naming the request. A
 * LeakError (the `throw` policy) was reported on custodian:leak already. Never an unhandled rejection.
 */
function closeQuietly(scope: Scope): void {
  const closing = scope.close();
  if (closing !== RESOLVED) closing.catch((error: unknown) => reportCloseErrors(scope, error)); // RESOLVED: closed already, nothing failed
}

function reportCloseErrors(scope: Scope, error: unknown): void {
  for (const failure of flattenSuppressed(error)) {
    if (failure instanceof LeakError) {
      // Under the `throw` policy the leak's warning is left to whoever gets the LeakError: here
      // nobody does, so it is printed as under `warn` (custodian:leak had the report already).
      emitLeakWarning(failure.report);
      continue;
    }
    warnRelease(`${scopeTitle(scope)}: a release failed when the request ended: ${errorText(failure)}`);
  }
}

/** The task of a request or response, if custodian/http opened a scope for it. */
export function taskOf(value: object): RequestTask | undefined {
  return (value as { [kTask]?: RequestTask })[kTask];
}

function endTaskTimedOut(task: RequestTask): void {
  endTimedOut(task.res);
}

/** Ends a response custodian cut short on timeout: a 503 if nothing was sent yet, else the connection is cut. */
export function endTimedOut(
  res: ResponseLike & { statusCode?: number; setHeader?(name: string, value: string): unknown; end?(body?: string): unknown },
): void {
  if (finished(res)) return;
  if (res.headersSent || typeof res.end !== 'function' || typeof res.setHeader !== 'function') {
    res.destroy(); // half a body cannot be finished correctly: the client must see the cut
    return;
  }
  res.statusCode = 503;
  res.setHeader('content-type', 'text/plain; charset=utf-8');
  res.setHeader('connection', 'close');
  res.end('Service Unavailable: the request timed out\n');
}

/** `METHOD /path` without the query string. */
export function requestName(req: RequestLike): string {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return `${req.method ?? 'GET'} ${q === -1 ? url : url.slice(0, q)}`;
}
