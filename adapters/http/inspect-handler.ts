/**
 * `inspectHandler()`: a ready `/debug/custodian` route that answers `inspect()` as JSON.
 */
import { inspect, type InspectOptions } from '../../src/index.js';
import { validateOptions, rules } from '../../src/internal.js';

/** A Node response (`ServerResponse`, Express's `res`) as the handler writes it. */
interface NodeResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

/** A Fastify reply as the handler writes it. */
interface FastifyReplyWriter {
  readonly raw: unknown;
  header(name: string, value: string): unknown;
  send(payload: string): unknown;
}

/** A handler for `node:http`, Express (`app.get(path, handler)`) and Fastify (`app.get(path, handler)`). */
export type InspectHandler = (req: unknown, res: NodeResponseLike | FastifyReplyWriter) => void;

/**
 * Returns a handler that answers with `inspect(options)` as JSON (`cache-control: no-store`): the
 * open scopes (oldest first, with their age and site), leases by site, pools, growth suspects and
 * the custodian/http counters. It shows source paths and scope names (which carry URL paths):
 * mount it on an internal port or behind authentication, never on a public route.
 *
 * @example
 * app.get('/debug/custodian', requireAdmin, inspectHandler({ maxScopes: 50 }));
 */
export function inspectHandler(options?: InspectOptions): InspectHandler {
  validateOptions('inspectHandler()', options, { maxScopes: rules.count, maxLeases: rules.count });
  const opts = options ?? {};
  return function custodianInspect(_req, res) {
    const body = JSON.stringify(inspect(opts));
    if ('raw' in res && typeof (res as FastifyReplyWriter).send === 'function') {
      const reply = res as FastifyReplyWriter;
      reply.header('cache-control', 'no-store');
      reply.header('content-type', 'application/json; charset=utf-8');
      reply.send(body);
      return;
    }
    const response = res as NodeResponseLike;
    response.statusCode = 200;
    response.setHeader('cache-control', 'no-store');
    response.setHeader('content-type', 'application/json; charset=utf-8');
    response.end(body);
  };
}
