/**
 * `custodianExpress()`: Express middleware that runs the rest of the chain in the request's scope.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { storage } from '../../src/internal.js';
import { checkOptions, type HttpScopeOptions } from './options.js';
import { requestName, RequestTask, requestScopeOptions, showHttpStats, taskOf, type RequestKind } from './request-scope.js';

/** What custodian reads of Express's `req`: the route it matched, to name the scope after its template. */
export interface ExpressRequestLike extends IncomingMessage {
  readonly baseUrl?: string;
  readonly route?: { readonly path?: unknown } | undefined;
}

/** Options of `custodianExpress()`. */
export type CustodianExpressOptions = HttpScopeOptions<ExpressRequestLike>;

/** An Express middleware (`app.use(custodianExpress())`). */
export type ExpressMiddleware = (req: ExpressRequestLike, res: ServerResponse, next: (error?: unknown) => void) => void;

/**
 * Express middleware: every request gets its own scope, and the rest of the chain (middleware,
 * route handlers, error handlers) runs inside it. Install it first: `app.use(custodianExpress())`.
 *
 * The scope is named after the route template once routed (`GET /users/:id`), else `METHOD /path`.
 * It closes when the response has finished; if the client goes away first, or the `timeout`
 * elapses, it is cancelled and closed at once and what it holds is destroyed. Errors thrown or
 * passed to `next(err)` reach Express's error handlers as usual. Behind `scoped(app)` it does nothing.
 *
 * @example
 * const app = express();
 * app.use(custodianExpress({ timeout: 10_000 }));
 * app.get('/users/:id', async (req, res) => {
 *   await using conn = await pool.acquire({ signal: requestSignal(req) });
 *   res.json(await conn.value.query('select ...'));
 * });
 */
export function custodianExpress(options?: CustodianExpressOptions): ExpressMiddleware {
  const { name, timeout, leaks } = checkOptions('custodianExpress()', options);
  showHttpStats();
  const kind: RequestKind = {
    timeout,
    scopeOptions: requestScopeOptions(leaks, custodianMiddleware),
    rename: name === undefined ? routeName : undefined,
  };
  function custodianMiddleware(req: ExpressRequestLike, res: ServerResponse, next: (error?: unknown) => void): void {
    if (taskOf(req) !== undefined) {
      next(); // already in a request scope (the app is served through scoped(app))
      return;
    }
    const task = new RequestTask(req, res, name === undefined ? requestName(req) : name(req), kind);
    storage.run(task.scope, next);
  }
  return custodianMiddleware;
}

/** `GET /users/:id` from the route Express matched, when it matched one. */
function routeName(task: RequestTask): string | undefined {
  const req = task.req as ExpressRequestLike;
  const path = req.route?.path;
  return typeof path === 'string' ? `${req.method ?? 'GET'} ${req.baseUrl ?? ''}${path}` : undefined;
}
