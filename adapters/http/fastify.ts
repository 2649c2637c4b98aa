/**
 * `custodianFastify`: a Fastify plugin that runs every request's hooks and handler in its scope.
 *
 * How the context gets in: the plugin's `onRequest` hook opens the scope and calls Fastify's
 * `done` inside `storage.run(scope, done)`. Fastify's hook runner calls the next hook, the body
 * parsers and the handler from that `done`, synchronously or from the promises of async hooks
 * (whose continuations carry the context of the `then` call, made inside the run), and it runs the
 * body parser's callback in an AsyncResource created there: everything until the reply runs in
 * the scope. `enterWith` would do it without a wrapper, but on Node 20 it writes the store onto the
 * async resource running now, which for an HTTP request is the connection's parser: the next request on
 * a keep-alive connection would start inside the previous request's (closed) scope.
 *
 * `onResponse` hooks run from the response's `finish` event, outside any request's context; the
 * plugin's own `onResponse` hook brings them back into the scope. The scope closes when the raw
 * response emits `close`, one tick after `finish` (or on its own when the client went away): one
 * listener covers what `onResponse`, `onRequestAbort` and `onTimeout` would each say.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { storage } from '../../src/internal.js';
import { checkOptions, type HttpScopeOptions } from './options.js';
import { endTimedOut, requestName, RequestTask, requestScopeOptions, showHttpStats, taskOf, type RequestKind } from './request-scope.js';

/** What custodian reads of a Fastify request. */
export interface FastifyRequestLike {
  readonly raw: IncomingMessage;
  readonly method: string;
  readonly url: string;
  readonly routeOptions?: { readonly url?: string | undefined } | undefined;
}

/** What custodian uses of a Fastify reply. */
export interface FastifyReplyLike {
  readonly raw: ServerResponse;
  readonly sent: boolean;
  code(statusCode: number): unknown;
  send(payload?: unknown): unknown;
}

type Hook = (request: FastifyRequestLike, reply: FastifyReplyLike, done: (error?: Error) => void) => void;

/** What custodian uses of a Fastify instance. */
export interface FastifyInstanceLike {
  addHook(name: 'onRequest' | 'onResponse', hook: Hook): unknown;
}

/** Options of `custodianFastify` (`app.register(custodianFastify, options)`). */
export type CustodianFastifyOptions = HttpScopeOptions<FastifyRequestLike>;

/**
 * Fastify plugin: every request gets its own scope, open from `onRequest` until the response has
 * finished, with every later hook and the handler running inside it. Register it before your
 * routes and other plugins: `await app.register(custodianFastify, { timeout: 10_000 })`. It is
 * not encapsulated (like a `fastify-plugin` plugin): it covers the whole instance.
 *
 * The scope is named `METHOD <route template>` (`GET /users/:id`). If the client goes away before
 * the response finished, or the `timeout` elapses, the scope is cancelled and closed at once and
 * what it holds is destroyed; on timeout the reply is a 503 (or the connection is cut, when the
 * response had started). Errors reach Fastify's error handler as usual.
 *
 * @example
 * const app = Fastify();
 * await app.register(custodianFastify, { timeout: 10_000 });
 * app.get('/users/:id', async (request) => {
 *   await using conn = await pool.acquire({ signal: requestSignal(request) });
 *   return conn.value.query('select ...');
 * });
 */
export function custodianFastify(fastify: FastifyInstanceLike, options: CustodianFastifyOptions, done: (error?: Error) => void): void {
  let name: CustodianFastifyOptions['name'];
  let timeout: number | undefined;
  let leaks: CustodianFastifyOptions['leaks'];
  try {
    // Fastify passes {} when register() was given no options.
    ({ name, timeout, leaks } = checkOptions('custodianFastify', options));
  } catch (error) {
    done(error as Error);
    return;
  }
  showHttpStats();
  const kind: RequestKind = { timeout, scopeOptions: requestScopeOptions(leaks, custodianOnRequest), onTimeout: timedOut };
  function custodianOnRequest(request: FastifyRequestLike, reply: FastifyReplyLike, next: () => void): void {
    const task = new RequestTask(request.raw, reply.raw, name === undefined ? routeName(request) : name(request), kind);
    if (timeout !== undefined) task.reply = reply;
    storage.run(task.scope, next);
  }
  fastify.addHook('onRequest', custodianOnRequest);
  fastify.addHook('onResponse', function custodianOnResponse(request, _reply, next) {
    const task = taskOf(request.raw);
    if (task === undefined) next();
    else storage.run(task.scope, next);
  });
  done();
}

// What fastify-plugin sets: the plugin's hooks apply to the instance that registers it, not to an
// encapsulated child context, so every route gets a scope.
Object.defineProperty(custodianFastify, Symbol.for('skip-override'), { value: true });
Object.defineProperty(custodianFastify, Symbol.for('fastify.display-name'), { value: 'custodian' });

function routeName(request: FastifyRequestLike): string {
  const template = request.routeOptions?.url;
  return template === undefined ? requestName(request.raw) : `${request.method} ${template}`;
}

function timedOut(task: RequestTask): void {
  const reply = task.reply as FastifyReplyLike;
  if (reply.sent || task.res.headersSent) {
    endTimedOut(task.res);
    return;
  }
  reply.code(503);
  reply.send({ statusCode: 503, error: 'Service Unavailable', message: 'the request timed out' });
}
