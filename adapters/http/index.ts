/**
 * custodian/http: one line puts every request of `node:http`, Express or Fastify in its own scope,
 * open until the response has finished or the client went away. See docs/http.md.
 */
export { custodianExpress, type CustodianExpressOptions, type ExpressMiddleware, type ExpressRequestLike } from './express.js';
export {
  custodianFastify,
  type CustodianFastifyOptions,
  type FastifyInstanceLike,
  type FastifyReplyLike,
  type FastifyRequestLike,
} from './fastify.js';
export { inspectHandler, type InspectHandler } from './inspect-handler.js';
export { scoped, type ScopedOptions } from './node.js';
export type { HttpScopeOptions } from './options.js';
export { requestScope, requestSignal } from './request.js';
export type { RequestLike, ResponseLike } from './request-scope.js';
