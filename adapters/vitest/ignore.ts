/**
 * Ignore rules: leftovers nobody should be told about (a connection a suite shares on purpose, a
 * timer a library starts once). A rule names sites or kinds; a leftover matching either is ignored.
 */
import { describe } from '../../src/internal.js';

/** What to ignore. A leftover matching any site or any kind is not reported. */
export interface IgnoreRules {
  /**
   * Acquisition sites, as reports print them (`file:line:column`, relative to the working
   * directory). A string matches a site equal to it or continuing it after `:`, so
   * `'test/helpers.ts'` matches the whole file and `'test/helpers.ts:42'` that line; a string
   * ending in `/` matches a folder. A RegExp is tested against the site.
   */
  sites?: readonly (string | RegExp)[] | undefined;
  /**
   * Kinds: a lease's kind as given to `track` or the pool (`redis connection`), `scope` for open
   * scopes, or a runtime handle's kind (`timer`, `interval`, `socket`, `server`, `file handle`,
   * `child process`, `watcher`, `udp socket`).
   */
  kinds?: readonly string[] | undefined;
}

/** What a rule is matched against. */
export interface Matchable {
  readonly kind: string;
  readonly site: string | undefined;
}

const KEYS = ['sites', 'kinds'];

/** Checks `rules` and returns a copy, so that a caller changing its arrays later changes nothing. */
export function checkRules(where: string, rules: unknown): IgnoreRules {
  if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) {
    throw new TypeError(`${where}: rules must be an object like { sites: ['test/helpers.ts'], kinds: ['timer'] }, got ${describe(rules)}`);
  }
  for (const key of Object.keys(rules)) {
    if (!KEYS.includes(key)) throw new TypeError(`${where}: unknown option '${key}'; known options are ${KEYS.join(', ')}`);
  }
  const { sites, kinds } = rules as Record<string, unknown>;
  const isSite = (s: unknown) => (typeof s === 'string' && s !== '') || s instanceof RegExp;
  const isKind = (k: unknown) => typeof k === 'string' && k !== '';
  if (sites !== undefined && !(Array.isArray(sites) && sites.every(isSite))) {
    throw new TypeError(`${where}: option 'sites' must be an array of non-empty strings or RegExps, got ${describeList(sites, isSite)}`);
  }
  if (kinds !== undefined && !(Array.isArray(kinds) && kinds.every(isKind))) {
    throw new TypeError(`${where}: option 'kinds' must be an array of non-empty strings, got ${describeList(kinds, isKind)}`);
  }
  return {
    sites: sites === undefined ? undefined : [...(sites as (string | RegExp)[])],
    kinds: kinds === undefined ? undefined : [...(kinds as string[])],
  };
}

function describeList(value: unknown, fits: (item: unknown) => boolean): string {
  if (!Array.isArray(value)) return describe(value);
  return `an array containing ${describe(value.find((item) => !fits(item)))}`;
}

function siteMatches(pattern: string | RegExp, site: string): boolean {
  if (typeof pattern !== 'string') {
    pattern.lastIndex = 0; // a /g or /y RegExp keeps state between test() calls
    return pattern.test(site);
  }
  return site === pattern || site.startsWith(pattern.endsWith('/') ? pattern : `${pattern}:`);
}

/** True when `item` matches one of `rules`. */
export function isIgnored(item: Matchable, rules: readonly IgnoreRules[]): boolean {
  for (const rule of rules) {
    if (rule.kinds !== undefined && rule.kinds.includes(item.kind)) return true;
    const site = item.site;
    if (site !== undefined && rule.sites !== undefined && rule.sites.some((pattern) => siteMatches(pattern, site))) return true;
  }
  return false;
}
