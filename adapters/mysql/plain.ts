/**
 * Whether a statement is "plain": it cannot leave session state behind on its connection, so that
 * under `reset: 'dirty'` the connection can go to the next borrower without a reset.
 *
 * Conservative by design: a false "not plain" costs one reset (about a round trip); a false "plain"
 * would hand session state to another task. So a statement is plain only when it starts with a
 * data keyword and mentions nothing that touches the session: no `@` (user variables, `@@SESSION`),
 * no second statement, no lock, no temporary table, no `LAST_INSERT_ID(expr)`. What this cannot see
 * is a stored function or trigger that sets session state itself: use `reset: 'always'` then.
 */

const DATA_STATEMENT = /^[\s(]*(?:SELECT|INSERT|UPDATE|DELETE|REPLACE|WITH|VALUES|TABLE|SHOW|DESCRIBE|DESC|EXPLAIN)\b/i;
const SESSION_TOUCH =
  /@|;\s*\S|\b(?:GET_LOCK|LOCK|TEMPORARY|LAST_INSERT_ID|SESSION|FOUND_ROWS|SQL_CALC_FOUND_ROWS|NEXTVAL|SETVAL|LASTVAL)\b/i;

/** True when `sql` cannot change its connection's session state (see above). */
export function isPlain(sql: unknown): boolean {
  const text = typeof sql === 'string' ? sql : typeof sql === 'object' && sql !== null ? (sql as { sql?: unknown }).sql : undefined;
  return typeof text === 'string' && DATA_STATEMENT.test(text) && !SESSION_TOUCH.test(text);
}
