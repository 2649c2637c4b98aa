/**
 * `scoped(listener)`: a scope per request for a `node:http`, `node:https` or `node:http2` (compat)
 * request listener.
 */
import { describe, isPromiseLike, storage } from '../../src/internal.js';
import { checkOptions, type HttpScopeOptions } from './options.js';
import {
  requestName,
  RequestTask,
  requestScopeOptions,
  showHttpStats,
  type RequestKind,
  type RequestLike,
  type ResponseLike,
} from './request-scope.js';

/** Options of `scoped()`. */
export type ScopedOptions<Req = RequestLike> = HttpScopeOptions<Req>;

/**
 * Wraps a request listener so that every request runs in its own scope, named `METHOD /path`
 * (without the query string) unless `name(req)` says otherwise.
 *
 * The scope opens before the listener runs and closes when the response has finished and the
 * listener's promise (if it returned one) has settled: what the request left unreleased is then
 * reclaimed and reported with the line that acquired it. If the client goes away first, or the
 * `timeout` elapses, the scope is cancelled at once: its signal aborts (see `requestSignal`), its
 * waiting acquires fail, and what it holds is destroyed, never handed to another request.
 *
 * Errors are not caught: a listener that throws or rejects behaves as it would unwrapped.
 *
 * @example
 * http.createServer(scoped(async (req, res) => {
 *   await using conn = await pool.acquire({ signal: requestSignal(req) });
 *   res.end(await conn.value.get('greeting'));
 * }, { timeout: 10_000 })).listen(3000);
 */
export function scoped<Req extends RequestLike, Res extends ResponseLike>(
  listener: (req: Req, res: Res) => unknown,
  options?: ScopedOptions<Req>,
): (req: Req, res: Res) => void {
  if (typeof listener !== 'function') {
    throw new TypeError(`scoped(): listener must be a function (req, res) => ..., got ${describe(listener)}`);
  }
  const { name, timeout, leaks } = checkOptions('scoped()', options);
  showHttpStats();
  const kind: RequestKind = { timeout, scopeOptions: requestScopeOptions(leaks, scopedRequest) };
  function scopedRequest(req: Req, res: Res): void {
    const task = new RequestTask(req, res, name === undefined ? requestName(req) : name(req), kind);
    const result = storage.run(task.scope, listener, req, res);
    if (isPromiseLike(result)) {
      task.listenerPending = true;
      // The rejection is passed on untouched, so an unhandled one stays unhandled, as without custodian.
      result.then(
        () => task.listenerSettled(),
        (error: unknown) => {
          task.listenerSettled();
          throw error;
        },
      );
    }
  }
  return scopedRequest;
}
