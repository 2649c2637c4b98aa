/**
 * The options every integration takes, and their validation (a TypeError naming the option, before
 * any request is served).
 */
import type { LeakPolicy } from '../../src/index.js';
import { rules, validateOptions } from '../../src/internal.js';

/** Options of `scoped()`, `custodianExpress()` and `custodianFastify`. */
export interface HttpScopeOptions<Req> {
  /**
   * The scope's name in reports. Default: `METHOD /path` without the query string (Express: the
   * route template once routed, `GET /users/:id`; Fastify: the route's URL template).
   */
  name?: ((req: Req) => string) | undefined;
  /**
   * Milliseconds after which the request is cut short: its scope is cancelled (its signal aborts
   * with a `ScopeTimeoutError`), what it holds is destroyed, and the response is ended (a 503 when
   * nothing was sent yet, else the connection is cut). Default: no limit.
   */
  timeout?: number | undefined;
  /** Leak policy for the request scopes, overriding `configure({ leaks })`. */
  leaks?: LeakPolicy | undefined;
}

const optionRules = {
  name: rules.function,
  timeout: rules.positiveMs,
  leaks: rules.oneOf('reclaim', 'warn', 'throw'),
};

/** Validates the options of `where` and returns them (an empty object when none were given). */
export function checkOptions<Req>(where: string, options: HttpScopeOptions<Req> | undefined): HttpScopeOptions<Req> {
  validateOptions(where, options, optionRules);
  return options ?? {};
}
