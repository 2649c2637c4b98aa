/**
 * Table-driven option validation: one rule per option, one error format for all of them, so every
 * bad option fails the same way — a TypeError that names the option, the bad value and what fits.
 */

/** A check for one option: returns a description of what fits when the value does not fit. */
export type Rule = (value: unknown) => string | undefined;

export const rules = {
  /** A whole number of milliseconds, 0 or more (0 usually means "off"). */
  ms: (value: unknown) =>
    typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 2 ** 31 - 1
      ? undefined
      : 'a whole number of milliseconds from 0 to 2147483647',
  /** A timeout: a whole number of milliseconds above 0. */
  positiveMs: (value: unknown) =>
    typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= 2 ** 31 - 1
      ? undefined
      : 'a whole number of milliseconds from 1 to 2147483647',
  count: (value: unknown) => (typeof value === 'number' && Number.isInteger(value) && value >= 0 ? undefined : 'a whole number from 0'),
  positiveInt: (value: unknown) =>
    typeof value === 'number' && Number.isInteger(value) && value > 0 ? undefined : 'a whole number above 0',
  fraction: (value: unknown) => (typeof value === 'number' && value >= 0 && value <= 1 ? undefined : 'a number from 0 to 1'),
  string: (value: unknown) => (typeof value === 'string' ? undefined : 'a string'),
  function: (value: unknown) => (typeof value === 'function' ? undefined : 'a function'),
  signal: (value: unknown) => (value instanceof AbortSignal ? undefined : 'an AbortSignal (for example controller.signal)'),
  oneOf:
    (...allowed: readonly string[]): Rule =>
    (value: unknown) =>
      typeof value === 'string' && allowed.includes(value) ? undefined : `one of ${allowed.map((a) => `'${a}'`).join(', ')}`,
} satisfies Record<string, Rule | ((...args: never[]) => Rule)>;

/**
 * Renders a bad value for an error message without dumping whole objects: `"text"`, `10n (a
 * bigint)`, `an array`, `an object`, `a Map`, `an Error`, `function connect`.
 */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
    case 'function':
      return `function ${value.name || '(anonymous)'}`;
    case 'bigint':
      return `${value}n (a bigint)`;
    case 'symbol':
      return `${value.toString()} (a symbol)`;
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'an array';
      const proto: unknown = Object.getPrototypeOf(value);
      if (proto === Object.prototype || proto === null) return 'an object';
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      return typeof name === 'string' && name !== '' ? withArticle(name) : 'an object';
    }
    default:
      return String(value);
  }
}

function withArticle(noun: string): string {
  return `${/^[AEIOU]/.test(noun) ? 'an' : 'a'} ${noun}`;
}

/**
 * Checks `options` against `table`. Unknown keys are rejected too (a misspelt `timout` would
 * otherwise be silently ignored). `undefined` values are treated as absent.
 */
export function validateOptions(where: string, options: unknown, table: Readonly<Record<string, Rule>>): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object, got ${describe(options)}`);
  }
  for (const key of Object.keys(options)) {
    const value = (options as Record<string, unknown>)[key];
    if (value === undefined) continue;
    const rule = table[key];
    if (rule === undefined) {
      throw new TypeError(`${where}: unknown option '${key}'; known options are ${Object.keys(table).join(', ')}`);
    }
    const expected = rule(value);
    if (expected !== undefined) {
      throw new TypeError(`${where}: option '${key}' must be ${expected}, got ${describe(value)}`);
    }
  }
}
