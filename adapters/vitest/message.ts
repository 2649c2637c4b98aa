/**
 * The failure text, written for whoever reads a red CI run: what was left behind, where it was
 * acquired, for how long, and what to do about it.
 */
import { isAbsolute, resolve } from 'node:path';
import { parseSite, plural, resourceName, unknownSite } from '../../src/internal.js';
import type { FoundLeak } from './findings.js';

function what(leak: FoundLeak): string {
  return leak.type === 'scope' ? (leak.detail ?? 'scope') : resourceName(leak);
}

function held(leak: FoundLeak): string {
  const ms = Math.round(leak.heldMs);
  if (leak.type === 'scope') return `open ${ms} ms`;
  if (leak.type === 'handle') return `running ${ms} ms`;
  return `held ${ms} ms`;
}

/** At most this many lines list leftovers; the rest are counted. */
const MAX_LINES = 20;

interface Group {
  readonly first: FoundLeak;
  count: number;
  heldMs: number;
}

/**
 * Leftovers that differ only in when they were acquired (and which scope reclaimed them) share a
 * line with a count: a loop that leaks on every iteration is one line, not a thousand.
 */
function grouped(leaks: readonly FoundLeak[]): Group[] {
  const groups = new Map<string, Group>();
  const solo: Group[] = [];
  for (const leak of leaks) {
    if (leak.type === 'scope' && leak.holds.length > 0) {
      solo.push({ first: leak, count: 1, heldMs: leak.heldMs });
      continue;
    }
    const key = [
      leak.type,
      leak.kind,
      leak.label,
      leak.site,
      leak.test,
      leak.type === 'reclaimed' ? leak.detail?.replace(/#\d+/g, '') : leak.detail,
    ].join('\0');
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { first: leak, count: 1, heldMs: leak.heldMs });
    else {
      group.count++;
      group.heldMs = Math.max(group.heldMs, leak.heldMs);
    }
  }
  return [...solo, ...groups.values()];
}

function rows(leaks: readonly FoundLeak[], indent: string): string[][] {
  const out: string[][] = [];
  for (const { first: leak, count, heldMs } of grouped(leaks)) {
    const notes = [
      leak.detail !== undefined && leak.type !== 'scope' ? leak.detail : undefined,
      leak.test === undefined ? undefined : `acquired by test "${leak.test}"`,
    ];
    if (leak.holds.length > 0) notes.push(`holding ${plural(leak.holds.length, 'lease')}:`);
    const times = count > 1 ? `${count}× ` : '';
    const longest = count > 1 ? `up to ${held({ ...leak, heldMs })}` : held(leak);
    out.push([
      `${indent}${times}${leak.type}`,
      what(leak),
      leak.site ?? unknownSite(),
      longest,
      notes.filter((n) => n !== undefined).join('; '),
    ]);
    out.push(...rows(leak.holds, `${indent}  `));
  }
  return out;
}

/** One line per leftover (alike ones counted on one line), in aligned columns: type, what, site, how long, notes. */
export function leakLines(leaks: readonly FoundLeak[]): string[] {
  const table = rows(leaks, '  ');
  const shown = table.slice(0, MAX_LINES);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...shown.map((row) => (row[i] ?? '').length)));
  const lines = shown.map((row) =>
    row
      .map((cell, i) => (i < 4 ? cell.padEnd(widths[i] ?? 0) : cell))
      .join('  ')
      .trimEnd(),
  );
  if (table.length > MAX_LINES) lines.push(`  ... and ${table.length - MAX_LINES} more lines (error.leaks has them all)`);
  return lines;
}

/** Who left them behind, for the headline. */
export type Culprit = 'test' | 'file' | 'function';

const HEADLINES: Record<Culprit, string> = {
  test: 'This test left',
  file: 'This file left (in its beforeAll/afterAll hooks, or in tests after they ended)',
  function: 'The function left',
};

/** The whole message of a LeakCheckError. */
export function leakMessage(culprit: Culprit, leaks: readonly FoundLeak[], waitedMs: number): string {
  const total = leaks.length;
  const firstSite = leaks.find((l) => l.site !== undefined)?.site;
  const ignoreHint =
    firstSite === undefined ? "ignoreLeaks({ kinds: ['<kind>'] })" : `ignoreLeaks({ sites: ['${firstSite.replace(/:\d+$/, '')}'] })`;
  return [
    `${HEADLINES[culprit]} ${plural(total, 'resource')} behind${waitedMs >= 1 ? ` (custodian waited ${Math.round(waitedMs)} ms for ${total === 1 ? 'it' : 'them'} to be released)` : ''}:`,
    ...leakLines(leaks),
    'Release each one on every path (`await using`, or release() in a finally block), or let a scope own it with scope.use() / scope.adopt(); a lease a scope had to reclaim is still a leak.',
    culprit === 'function'
      ? `If one is meant to outlive the call, pass expectNoLeaks(fn, { ignore: { sites: [...] } }).`
      : culprit === 'file'
        ? `What beforeAll acquires, release in afterAll; what a test's code acquires after the test ended, wait for in the test. If it is meant to outlive the file, call ${ignoreHint} in the setup file.`
        : `If one is meant to outlive the test, release it in afterEach/afterAll; if it is not this test's to fix, call allowLeaks() in the test or ${ignoreHint} in the setup file.`,
  ].join('\n');
}

/** Stack frames at the leak sites, so that the test runner shows the leaking line's code. */
export function siteFrames(leaks: readonly FoundLeak[]): string[] {
  const frames: string[] = [];
  const seen = new Set<string>();
  const add = (leak: FoundLeak) => {
    if (leak.site !== undefined && !seen.has(leak.site)) {
      seen.add(leak.site);
      const frame = parseSite(leak.site);
      const file = frame?.file ?? leak.site;
      const path = isAbsolute(file) ? file : resolve(process.cwd(), file);
      frames.push(`    at ${path}:${frame?.line ?? 0}:${frame?.column ?? 0}`);
    }
    for (const h of leak.holds) add(h);
  };
  for (const leak of leaks) add(leak);
  return frames;
}
