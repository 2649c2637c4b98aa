/**
 * The test mode tested as users meet it: vitest runs the fixture files in a child process, with
 * `custodian/vitest/setup` in setupFiles resolved through the package's exports map (so against
 * dist/: `npm test` builds first), and its JSON report says which tests failed and why.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));

interface TestResult {
  readonly title: string;
  readonly status: string;
  readonly duration: number;
  readonly failureMessages: readonly string[];
}
interface FileResult {
  readonly name: string;
  readonly status: string;
  readonly message: string;
  readonly assertionResults: readonly TestResult[];
}

let files: FileResult[] = [];

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/adapters/vitest/setup.js')))
    throw new Error('dist/ is missing: run `npm run build` (npm test does) before these tests');
  const dir = mkdtempSync(join(tmpdir(), 'custodian-vitest-'));
  const output = join(dir, 'report.json');
  try {
    await new Promise<void>((resolve) => {
      execFile(
        process.execPath,
        [
          join(root, 'node_modules/vitest/vitest.mjs'),
          'run',
          '--config',
          join(fixtures, 'vitest.config.ts'),
          '--reporter=json',
          `--outputFile=${output}`,
        ],
        { cwd: root, env: { ...process.env, CI: 'true', FORCE_COLOR: '0' }, timeout: 120_000 },
        () => resolve(), // it exits 1: fixtures fail on purpose
      );
    });
    files = (JSON.parse(readFileSync(output, 'utf8')) as { testResults: FileResult[] }).testResults;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);

function file(name: string): FileResult {
  const found = files.find((f) => f.name.endsWith(`/${name}`));
  if (found === undefined) throw new Error(`no result for ${name}; got ${files.map((f) => f.name).join(', ')}`);
  return found;
}

function result(name: string, title: string): TestResult {
  const found = file(name).assertionResults.find((t) => t.title === title);
  if (found === undefined) throw new Error(`no test "${title}" in ${name}`);
  return found;
}

/** `file:line` of the fixture line marked `// leak:NAME`, as reports print it (relative to the working directory). */
function marked(name: string, mark: string): string {
  const lines = readFileSync(join(fixtures, name), 'utf8').split('\n');
  const index = lines.findIndex((l) => l.trimEnd().endsWith(`// leak:${mark}`));
  if (index === -1) throw new Error(`no line marked leak:${mark} in ${name}`);
  return `${relative(root, join(fixtures, name))}:${index + 1}:`;
}

const failure = (name: string, title: string) => result(name, title).failureMessages.join('\n');

describe('a leaky test fails, naming the line that leaked', () => {
  test('a lease and a scope left behind: each listed with kind, label, file:line and held time', () => {
    const r = result('leaky.fixture.ts', 'leaks a connection and a scope');
    expect(r.status).toBe('failed');
    const message = failure('leaky.fixture.ts', 'leaks a connection and a scope');
    expect(message).toMatch(/^LeakCheckError: This test left 2 resources behind \(custodian waited 10\d\d ms/);
    expect(message).toMatch(
      new RegExp(`lease +db connection \\(orders\\) +${marked('leaky.fixture.ts', 'connection')}\\d+ +held \\d+ ms +unscoped`),
    );
    expect(message).toMatch(
      new RegExp(`scope +scope "import job" \\(#\\d+\\) +${marked('leaky.fixture.ts', 'scope')}\\d+ +open \\d+ ms +holding 1 lease:`),
    );
    expect(message).toMatch(new RegExp(`\\n {4}lease +cache connection +${marked('leaky.fixture.ts', 'held')}\\d+ +held \\d+ ms`));
    // A stack frame at the leaking line, so that vitest prints that line's code.
    expect(message).toContain(`at ${join(root, marked('leaky.fixture.ts', 'connection'))}`);
  });

  test('a lease the scope had to reclaim counts, without waiting', () => {
    const message = failure('leaky.fixture.ts', 'reclaimed by withScope: forgot to release inside a scope');
    expect(message).toMatch(/^LeakCheckError: This test left 1 resource behind:/);
    expect(message).toMatch(
      new RegExp(
        `reclaimed +db connection +${marked('leaky.fixture.ts', 'reclaimed')}\\d+ +held \\d+ ms +scope "GET /orders" \\(#\\d+\\) closed while it was still held; custodian released it`,
      ),
    );
  });

  test('allowLeaks(rules) lets through only what matches', () => {
    const message = failure('leaky.fixture.ts', 'allowLeaks(rules) lets only what matches through');
    expect(message).toContain(marked('leaky.fixture.ts', 'not-allowed'));
    expect(message).not.toContain('cache connection');
  });

  test('a test that fails on its own reports only its own error', () => {
    expect(failure('leaky.fixture.ts', 'fails on its own: only its own error is reported, not what it left')).toMatch(
      /^Error: the assertion that failed/,
    );
    expect(result('leaky.fixture.ts', 'fails on its own: only its own error is reported, not what it left').failureMessages).toHaveLength(
      1,
    );
  });

  test('its fixed twin passes', () => {
    expect(file('fixed.fixture.ts').assertionResults.map((t) => t.status)).toEqual(['passed', 'passed']);
    expect(file('fixed.fixture.ts').status).toBe('passed');
  });
});

describe('stragglers: the check waits before deciding', () => {
  test('a release 50 ms after the test returned passes', () => {
    expect(result('late.fixture.ts', 'releases a connection 50 ms after returning').status).toBe('passed');
  });

  test('a scope closed 100 ms after the test returned passes', () => {
    expect(result('late.fixture.ts', 'closes its scope 100 ms after returning').status).toBe('passed');
  });

  test('a test that leaves vi.useFakeTimers() on still gets its check on time (real clock, node:timers)', () => {
    const message = failure('fake-timers.fixture.ts', 'leaves fake timers installed and leaks');
    expect(message).toContain(marked('fake-timers.fixture.ts', 'fake'));
    expect(message).toMatch(/custodian waited 10\d\d ms/);
  });

  test('a release after the wait (1000 ms by default) fails', () => {
    expect(failure('late.fixture.ts', 'releases after 3 s: too late for the default 1000 ms wait')).toContain(
      marked('late.fixture.ts', 'too-late'),
    );
  });
});

test('a test that skips itself, and a test.fails test, are not checked (and do not wait)', () => {
  expect(file('skipped.fixture.ts').assertionResults.map((t) => t.status)).toEqual(['skipped', 'passed']);
  // No wait for what they left (1000 ms by default): a skipped test's error would be dropped anyway.
  expect(result('skipped.fixture.ts', 'skips itself after acquiring').duration).toBeLessThan(500);
  expect(file('skipped.fixture.ts').status).toBe('passed');
});

test('leaks ignored by site, by kind, or allowed for the test: the file passes', () => {
  expect(file('ignored.fixture.ts').status).toBe('passed');
  expect(file('ignored.fixture.ts').assertionResults.every((t) => t.status === 'passed')).toBe(true);
});

describe('attribution', () => {
  test('test.concurrent: each test is charged for its own leak only; the clean one passes', () => {
    const a = failure('concurrent.fixture.ts', 'A leaks after a pause');
    const c = failure('concurrent.fixture.ts', 'C leaks at once, from a timer it started');
    expect(a).toContain(marked('concurrent.fixture.ts', 'A'));
    expect(a).not.toContain('c connection');
    expect(a).toMatch(/left 1 resource behind/);
    expect(c).toContain(marked('concurrent.fixture.ts', 'C'));
    expect(c).not.toContain('a connection');
    expect(result('concurrent.fixture.ts', 'B is clean and runs through both leaks').status).toBe('passed');
  });

  test('what a test acquires after it ended is reported at the end of the file, naming it, never on the next test', () => {
    expect(result('later.fixture.ts', 'second: runs while the first one’s timer fires, and leaks nothing').status).toBe('passed');
    expect(result('later.fixture.ts', 'first: starts a timer that acquires after the test has ended').status).toBe('passed');
    const message = file('later.fixture.ts').message;
    expect(message).toContain(marked('later.fixture.ts', 'late'));
    expect(message).toContain('acquired by test "first: starts a timer that acquires after the test has ended"');
  });

  test('a server started in beforeAll: its handler’s leak is charged to the one test running', () => {
    expect(failure('server.fixture.ts', 'a request whose handler leaks')).toContain(marked('server.fixture.ts', 'handler'));
    expect(result('server.fixture.ts', 'a request whose handler is clean').status).toBe('passed');
  });

  test('hooks: beforeEach/afterEach pairs pass; what beforeAll leaves is reported for the file', () => {
    expect(file('hooks.fixture.ts').assertionResults.map((t) => t.status)).toEqual(['passed', 'passed']);
    expect(file('hooks.fixture.ts').message).toMatch(
      /^This file left \(in its beforeAll\/afterAll hooks, or in tests after they ended\) 1 resource behind/,
    );
    expect(file('hooks.fixture.ts').message).toContain(marked('hooks.fixture.ts', 'beforeAll'));
    expect(file('hooks.fixture.ts').message).toContain('What beforeAll acquires, release in afterAll');
    expect(file('hooks.fixture.ts').message).not.toContain('allowLeaks()');
  });
});

test('expectNoHeapGrowth() in a process started without --expose-gc measures, and fails a leak', () => {
  expect(file('heap.fixture.ts').assertionResults.map((t) => t.status)).toEqual(['passed', 'passed']);
});

describe('the optional handle check', () => {
  test('an interval and a listening server left running fail, with the line that started them', () => {
    expect(failure('handles.fixture.ts', 'leaves an interval running')).toMatch(
      new RegExp(`handle +interval +${marked('handles.fixture.ts', 'interval')}`),
    );
    expect(failure('handles.fixture.ts', 'leaves a server listening')).toMatch(
      new RegExp(`handle +server +${marked('handles.fixture.ts', 'server')}`),
    );
  });

  test('what the test cleared, and unref’d timers, pass', () => {
    expect(result('handles.fixture.ts', 'clears what it starts').status).toBe('passed');
    expect(result('handles.fixture.ts', 'an unref’d timer does not keep the process alive: not reported').status).toBe('passed');
  });
});
