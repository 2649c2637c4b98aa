/**
 * Unit tests of the leak check's ignore rules (isIgnored, checkRules) and of its failure text
 * (leakLines, leakMessage).
 */
import { describe, expect, it } from 'vitest';
import type { FoundLeak } from '../../adapters/vitest/index.js';
import { checkRules, isIgnored, type IgnoreRules } from '../../adapters/vitest/ignore.js';
import { leakLines, leakMessage } from '../../adapters/vitest/message.js';

const SITE = 'test/support/db.ts:42:18';

const item = (site: string | undefined, kind = 'connection') => ({ kind, site });

describe('isIgnored(): sites', () => {
  const ignored = (pattern: string | RegExp, site: string | undefined) => isIgnored(item(site), [{ sites: [pattern] }]);

  it('a full site matches exactly that site', () => {
    expect(ignored(SITE, SITE)).toBe(true);
    expect(ignored(SITE, 'test/support/db.ts:42:19')).toBe(false);
    expect(ignored(SITE, 'test/support/db.ts:42:180')).toBe(false);
  });

  it('a file matches every line of it, and only of it: it must be followed by ":"', () => {
    expect(ignored('test/support/db.ts', SITE)).toBe(true);
    expect(ignored('test/support/db.ts', 'test/support/db.ts:1:1')).toBe(true);
    expect(ignored('test/support/db.ts', 'test/support/db.tsx:1:1')).toBe(false);
    expect(ignored('test/support/db', SITE)).toBe(false);
    expect(ignored('support/db.ts', SITE)).toBe(false);
  });

  it('file:line matches that line, not lines that start with the same digits', () => {
    expect(ignored('test/support/db.ts:42', SITE)).toBe(true);
    expect(ignored('test/support/db.ts:4', SITE)).toBe(false);
    expect(ignored('test/support/db.ts:42', 'test/support/db.ts:420:1')).toBe(false);
  });

  it('a string ending in "/" matches a folder, at any depth; without the "/" it is a file', () => {
    expect(ignored('test/', SITE)).toBe(true);
    expect(ignored('test/support/', SITE)).toBe(true);
    expect(ignored('test/supp', SITE)).toBe(false);
    expect(ignored('test/support', SITE)).toBe(false);
    expect(ignored('test/sup/', SITE)).toBe(false);
    expect(ignored('src/', SITE)).toBe(false);
  });

  it('a RegExp is tested against the site', () => {
    expect(ignored(/db\.ts:4\d:/, SITE)).toBe(true);
    expect(ignored(/^support/, SITE)).toBe(false);
    expect(ignored(/^test\/support\//, SITE)).toBe(true);
  });

  it('a /g (or /y) RegExp gives the same answer when tested again', () => {
    for (const pattern of [/db\.ts/g, /test/y]) {
      const rules: IgnoreRules[] = [{ sites: [pattern] }];
      expect(isIgnored(item(SITE), rules)).toBe(true);
      expect(isIgnored(item(SITE), rules)).toBe(true);
      expect(isIgnored(item(SITE), rules)).toBe(true);
    }
    const global = /support/g;
    // Whatever state it was left in by someone else's exec().
    global.exec('a support b support');
    expect(isIgnored(item(SITE), [{ sites: [global] }])).toBe(true);
  });

  it('a leftover with no site matches no site rule', () => {
    expect(ignored('test/', undefined)).toBe(false);
    expect(ignored(/.*/, undefined)).toBe(false);
  });
});

describe('isIgnored(): kinds and several rules', () => {
  it('kinds match exactly', () => {
    expect(isIgnored(item(SITE, 'metrics timer'), [{ kinds: ['metrics timer'] }])).toBe(true);
    expect(isIgnored(item(SITE, 'metrics timer'), [{ kinds: ['metrics'] }])).toBe(false);
    expect(isIgnored(item(SITE, 'Metrics Timer'), [{ kinds: ['metrics timer'] }])).toBe(false);
  });

  it('"scope" is the kind of an open scope; handle kinds work the same', () => {
    expect(isIgnored(item(SITE, 'scope'), [{ kinds: ['scope'] }])).toBe(true);
    expect(isIgnored(item(SITE, 'connection'), [{ kinds: ['scope'] }])).toBe(false);
    expect(isIgnored(item(undefined, 'interval'), [{ kinds: ['timer', 'interval'] }])).toBe(true);
  });

  it('a rule matches when its sites or its kinds do; any rule of the list is enough', () => {
    const rules: IgnoreRules[] = [{ sites: ['src/'], kinds: ['cache'] }, { sites: [/db\.ts/] }];
    expect(isIgnored(item('src/a.ts:1:1', 'connection'), rules)).toBe(true);
    expect(isIgnored(item('lib/a.ts:1:1', 'cache'), rules)).toBe(true);
    expect(isIgnored(item(SITE, 'connection'), rules)).toBe(true);
    expect(isIgnored(item('lib/a.ts:1:1', 'connection'), rules)).toBe(false);
  });

  it('no rules, or empty rules, ignore nothing', () => {
    expect(isIgnored(item(SITE), [])).toBe(false);
    expect(isIgnored(item(SITE), [{}])).toBe(false);
    expect(isIgnored(item(SITE), [{ sites: [], kinds: [] }])).toBe(false);
    expect(isIgnored(item(SITE), [{ sites: undefined, kinds: undefined }])).toBe(false);
  });
});

describe('checkRules()', () => {
  it('returns a copy: changing the arrays given later changes nothing', () => {
    const sites: (string | RegExp)[] = ['a.ts'];
    const kinds = ['timer'];
    const checked = checkRules('f()', { sites, kinds });
    sites.push('b.ts');
    kinds.length = 0;
    expect(checked).toEqual({ sites: ['a.ts'], kinds: ['timer'] });
    expect(checkRules('f()', {})).toEqual({ sites: undefined, kinds: undefined });
  });

  it('accepts strings and RegExps for sites, strings for kinds', () => {
    const re = /x/;
    expect(checkRules('f()', { sites: ['a', re], kinds: ['k'] }).sites?.[1]).toBe(re);
  });

  const bad: [string, unknown, string | RegExp][] = [
    ['not an object', 'test/', "f(): rules must be an object like { sites: ['test/helpers.ts'], kinds: ['timer'] }, got \"test/\""],
    ['null', null, "f(): rules must be an object like { sites: ['test/helpers.ts'], kinds: ['timer'] }, got null"],
    ['an array', ['test/'], /^f\(\): rules must be an object like \{ sites: \['test\/helpers\.ts'\], kinds: \['timer'\] \}, got /],
    ['an unknown key', { site: ['a'] }, "f(): unknown option 'site'; known options are sites, kinds"],
    ['sites a string', { sites: 'x' }, 'f(): option \'sites\' must be an array of non-empty strings or RegExps, got "x"'],
    [
      'sites with a number',
      { sites: ['a', 5] },
      "f(): option 'sites' must be an array of non-empty strings or RegExps, got an array containing 5",
    ],
    [
      'sites with an empty string',
      { sites: [''] },
      'f(): option \'sites\' must be an array of non-empty strings or RegExps, got an array containing ""',
    ],
    ['kinds with a number', { kinds: [1] }, "f(): option 'kinds' must be an array of non-empty strings, got an array containing 1"],
    [
      'kinds with a RegExp',
      { kinds: [/timer/] },
      "f(): option 'kinds' must be an array of non-empty strings, got an array containing a RegExp",
    ],
    ['kinds a string', { kinds: 'timer' }, 'f(): option \'kinds\' must be an array of non-empty strings, got "timer"'],
  ];
  it.each(bad)('%s: a TypeError naming the option', (_name, rules, message) => {
    expect(() => checkRules('f()', rules)).toThrow(TypeError);
    expect(() => checkRules('f()', rules)).toThrow(message);
  });
});

const lease = (over: Partial<FoundLeak> = {}): FoundLeak => ({
  type: 'lease',
  kind: 'db connection',
  label: 'orders',
  site: 'src/db.ts:10:5',
  heldMs: 12.4,
  detail: 'unscoped',
  test: undefined,
  holds: [],
  ...over,
});

describe('leakLines()', () => {
  it('one line per leftover, in aligned columns: type, what, site, how long, notes', () => {
    const lines = leakLines([
      lease(),
      lease({ kind: 'cache', label: undefined, site: 'src/cache/redis.ts:7:3', heldMs: 3, detail: undefined }),
    ]);
    expect(lines).toEqual([
      '  lease  db connection (orders)  src/db.ts:10:5          held 12 ms  unscoped',
      '  lease  cache                   src/cache/redis.ts:7:3  held 3 ms',
    ]);
  });

  it('1000 alike leftovers are one line with a count, and the longest time', () => {
    const leaks = Array.from({ length: 1000 }, (_, i) => lease({ heldMs: i }));
    const lines = leakLines(leaks);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ {2}1000× lease +db connection \(orders\) +src\/db\.ts:10:5 +up to held 999 ms +unscoped$/);
  });

  it('leftovers that differ in site, label or kind are not grouped', () => {
    const lines = leakLines([lease(), lease({ site: 'src/db.ts:11:5' }), lease({ label: 'users' }), lease({ kind: 'other' }), lease()]);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^ {2}2× lease/);
  });

  it('reclaimed leases reclaimed by different scopes (#ids) group; their detail is shown', () => {
    const reclaimed = (id: number) =>
      lease({ type: 'reclaimed', detail: `scope #${id} (opened at src/a.ts:1:1) closed while it was still held; custodian released it` });
    const lines = leakLines([reclaimed(1), reclaimed(2), reclaimed(300)]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^ {2}3× reclaimed +db connection \(orders\) +src\/db\.ts:10:5 +up to held 12 ms +scope #1 \(opened at src\/a\.ts:1:1\) closed while it was still held; custodian released it$/,
    );
    const collected = leakLines([
      lease({ type: 'reclaimed', detail: 'its lease was garbage-collected unreleased; custodian released it' }),
    ]);
    expect(collected[0]).toContain('its lease was garbage-collected unreleased; custodian released it');
  });

  it('more than 20 distinct lines: the first 20, and a count of the rest', () => {
    const leaks = Array.from({ length: 25 }, (_, i) => lease({ site: `src/db.ts:${i + 1}:5` }));
    const lines = leakLines(leaks);
    expect(lines).toHaveLength(21);
    expect(lines[19]).toContain('src/db.ts:20:5');
    expect(lines[20]).toBe('  ... and 5 more lines (error.leaks has them all)');
    expect(leakLines(leaks.slice(0, 20))).toHaveLength(20);
  });

  it('a scope that holds leases: its line says how many, and theirs are indented under it', () => {
    const scope: FoundLeak = {
      type: 'scope',
      kind: 'scope',
      label: 'import job',
      site: 'src/jobs.ts:3:17',
      heldMs: 40,
      detail: 'scope "import job" (#7)',
      test: undefined,
      holds: [
        lease({ detail: undefined, site: 'src/jobs.ts:5:9' }),
        lease({ detail: undefined, kind: 'file', label: 'a.csv', site: 'src/jobs.ts:6:9' }),
      ],
    };
    const lines = leakLines([scope, lease()]);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^ {2}scope +scope "import job" \(#7\) +src\/jobs\.ts:3:17 +open 40 ms +holding 2 leases:$/);
    expect(lines[1]).toMatch(/^ {4}lease +db connection \(orders\) +src\/jobs\.ts:5:9 +held 12 ms$/);
    expect(lines[2]).toMatch(/^ {4}lease +file \(a\.csv\) +src\/jobs\.ts:6:9 +held 12 ms$/);
    expect(lines[3]).toMatch(/^ {2}lease +db connection \(orders\) +src\/db\.ts:10:5 +held 12 ms +unscoped$/);
  });

  it('a scope holding nothing: "open", no note', () => {
    const lines = leakLines([
      {
        type: 'scope',
        kind: 'scope',
        label: undefined,
        site: 'src/a.ts:1:1',
        heldMs: 5,
        detail: 'scope #3 (opened at src/a.ts:1:1)',
        test: undefined,
        holds: [],
      },
    ]);
    expect(lines).toEqual(['  scope  scope #3 (opened at src/a.ts:1:1)  src/a.ts:1:1  open 5 ms']);
  });

  it('a handle is "running"; a leftover of an ended test names it; a missing site says why', () => {
    const lines = leakLines([
      {
        type: 'handle',
        kind: 'interval',
        label: undefined,
        site: undefined,
        heldMs: 7,
        detail: 'created in ioredis/built/Redis.js:12',
        test: undefined,
        holds: [],
      },
      lease({ test: 'suite > a test', detail: undefined }),
    ]);
    expect(lines[0]).toMatch(/^ {2}handle +interval +\(site unknown: .*\) +running 7 ms +created in ioredis\/built\/Redis\.js:12$/);
    expect(lines[1]).toMatch(/held 12 ms +acquired by test "suite > a test"$/);
  });
});

describe('leakMessage()', () => {
  it('a headline with the count and the time waited, the lines, and what to do', () => {
    const message = leakMessage('test', [lease(), lease({ label: 'users' })], 1003.6);
    const lines = message.split('\n');
    expect(lines[0]).toBe('This test left 2 resources behind (custodian waited 1004 ms for them to be released):');
    expect(lines[1]).toMatch(/^ {2}lease +db connection \(orders\)/);
    expect(lines[2]).toMatch(/^ {2}lease +db connection \(users\)/);
    expect(lines[3]).toMatch(/^Release each one on every path/);
    expect(lines[4]).toBe(
      "If one is meant to outlive the test, release it in afterEach/afterAll; if it is not this test's to fix, call allowLeaks() in the test or ignoreLeaks({ sites: ['src/db.ts:10'] }) in the setup file.",
    );
    expect(lines).toHaveLength(5);
  });

  it('one resource, no wait: singular, and no "waited"', () => {
    expect(leakMessage('function', [lease()], 0.4).split('\n')[0]).toBe('The function left 1 resource behind:');
    expect(leakMessage('function', [lease()], 10).split('\n')[0]).toBe(
      'The function left 1 resource behind (custodian waited 10 ms for it to be released):',
    );
    expect(leakMessage('function', [lease()], 0)).toContain('pass expectNoLeaks(fn, { ignore: { sites: [...] } }).');
  });

  it('for a file; with no site the hint names kinds', () => {
    const message = leakMessage('file', [lease({ site: undefined })], 0);
    expect(message.split('\n')[0]).toBe(
      'This file left (in its beforeAll/afterAll hooks, or in tests after they ended) 1 resource behind:',
    );
    expect(message).toContain("ignoreLeaks({ kinds: ['<kind>'] })");
  });

  it('counts every leftover in the headline, also those grouped on one line or beyond the 20 shown', () => {
    const alike = Array.from({ length: 1000 }, () => lease());
    const message = leakMessage('test', alike, 0);
    expect(message.split('\n')[0]).toBe('This test left 1000 resources behind:');
    expect(message.split('\n')[1]).toMatch(/^ {2}1000× lease/);
  });

  it('a reclaimed leak shows what happened to it', () => {
    const message = leakMessage(
      'function',
      [lease({ type: 'reclaimed', detail: 'pool "db" closed with it still borrowed; the pool destroyed it' })],
      0,
    );
    expect(message).toMatch(
      /reclaimed +db connection \(orders\) +src\/db\.ts:10:5 +held 12 ms +pool "db" closed with it still borrowed; the pool destroyed it/,
    );
  });
});
