/**
 * Reaching a request's scope from the request: for handlers that pass its signal on.
 */
import type { Scope } from '../../src/index.js';
import { taskOf } from './request-scope.js';

/** A Node request (`IncomingMessage`, Express's `req`), or a Fastify request (its `raw` is one). */
type AnyRequest = object | { readonly raw: object };

/**
 * The scope custodian/http opened for this request, or `undefined` when none did (the integration
 * is not installed, or the request came in before it). Works with Node, Express and Fastify requests.
 */
export function requestScope(req: AnyRequest): Scope | undefined {
  if (typeof req !== 'object' || req === null) return undefined;
  const task = taskOf(req) ?? ('raw' in req && typeof req.raw === 'object' && req.raw !== null ? taskOf(req.raw) : undefined);
  return task?.scope;
}

/**
 * The request's `AbortSignal`: it aborts when the client goes away before the response finished,
 * when the request's `timeout` elapses, and when the request's scope closes. Pass it to whatever
 * the handler awaits (`pool.acquire({ signal })`, `fetch(url, { signal })`). Throws a TypeError
 * when custodian/http opened no scope for this request: a signal that never aborts would hide that.
 */
export function requestSignal(req: AnyRequest): AbortSignal {
  const scope = requestScope(req);
  if (scope === undefined) {
    throw new TypeError(
      'requestSignal(): this request has no custodian scope; install the integration first (scoped(listener), app.use(custodianExpress()) or app.register(custodianFastify)) and call it from inside the request',
    );
  }
  return scope.signal;
}
