/**
 * The `custodian soak` CLI end to end, in a child process running the built dist/ (npm test builds
 * first): module mode and --url mode against a leaky node:http server started here, the exit
 * codes, the JSON, the SVG, progress without control codes when stderr is not a terminal, and one
 * clear line for each kind of bad input.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SoakResult } from '../../adapters/soak/index.js';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'dist/adapters/soak/cli.js');
const fixtures = 'test/soak/fixtures';
let dir: string | undefined;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Well-formed XML, checked by hand (Node has no XML parser): tags balance, attributes are quoted, entities are known. */
function assertWellFormedXml(text: string): void {
  const body = text.replace(/^<\?xml[^>]*\?>\s*/, '');
  const stack: string[] = [];
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|&(?!(?:lt|gt|amp|quot|apos|#\d+);)/g;
  let match: RegExpExecArray | null;
  while ((match = tag.exec(body)) !== null) {
    if (match[2] === undefined)
      throw new Error(`stray ${JSON.stringify(match[0])} at ${match.index}: ${body.slice(match.index, match.index + 60)}`);
    if (match[1] === '/') {
      const open = stack.pop();
      if (open !== match[2]) throw new Error(`</${match[2]}> closes <${open}>`);
    } else if (match[4] !== '/') stack.push(match[2]);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first (npm test does)`);
  const built = statSync(cli).mtimeMs;
  for (const file of readdirSync(join(root, 'adapters/soak'))) {
    if (statSync(join(root, 'adapters/soak', file)).mtimeMs > built)
      throw new Error(`dist/ is older than adapters/soak/${file}: run npm run build`);
  }
  dir = mkdtempSync(join(tmpdir(), 'custodian-soak-'));
});
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('custodian soak <module>', () => {
  it('finds a leak: exit 1, the table, the verdict, the line, a JSON result and an SVG chart', async () => {
    const json = join(dir as string, 'leak.json');
    const svg = join(dir as string, 'leak.svg');
    const r = await run(['soak', `${fixtures}/module.mjs`, '--iterations', '5000', '--json', json, '--svg', svg]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^ iteration +ms +heapUsed +external +arrayBuffers +rss/);
    expect(r.stdout).toMatch(/verdict: LEAKING — heapUsed grows \d+ B\/iteration/);
    expect(r.stdout).toMatch(
      /test\/soak\/fixtures\/module\.mjs:5:\d+ \(handler\) => growth times \d+, retained \+[\d.]+ MiB \(\+\d+ B\/iteration\)/,
    );
    const result = JSON.parse(readFileSync(json, 'utf8')) as SoakResult;
    expect(result.verdict).toBe('leaking');
    expect(result.target).toEqual({ kind: 'function', name: `${fixtures}/module.mjs#default` });
    expect(result.rate.bytesPerIteration).toBeGreaterThan(1024 * 0.8);
    expect(result.rate.bytesPerIteration).toBeLessThan(1024 * 1.2);
    expect(result.sites[0]?.site).toMatch(/^test\/soak\/fixtures\/module\.mjs:5:/);
    const chart = readFileSync(svg, 'utf8');
    assertWellFormedXml(chart);
    expect(chart).toContain('<svg xmlns="http://www.w3.org/2000/svg"');
    expect(chart).toContain('data-series="heapUsed"');
    expect(chart).toContain('data-series="rss"');
    expect(chart).toContain('class="fit"');
    expect(chart).toContain('memory after a full GC (MiB)');
    expect(chart).toContain('iterations (measured, after 500 warm-up)');
    expect(chart.match(/<circle /g)?.length).toBeGreaterThanOrEqual(2 * result.samples.length);
  });

  it('a function that keeps nothing: exit 0; progress as plain lines on a stderr that is no terminal', async () => {
    const r = await run(['soak', `${fixtures}/module.mjs`, '--export', 'steady', '--iterations', '5000', '--concurrency', '4']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('verdict: STABLE');
    expect(r.stdout).toContain('concurrency 4');
    expect(r.stderr).toMatch(/^soak: checkpoint 1\/12 at 0 iterations: heapUsed [\d.]+ MiB, rss [\d.]+ MiB$/m);
    expect(r.stderr).toMatch(/^soak: checkpoint 12\/12 at 5000 iterations/m);
    expect(r.stderr).not.toContain('\x1b');
    expect(r.stderr).not.toContain('\r');
  });
});

describe('custodian soak: a task that throws', () => {
  it('stops at the first error: exit 2, the iteration and the message, then the stack', async () => {
    const r = await run(['soak', `${fixtures}/module.mjs`, '--export', 'broken', '--iterations', '100', '--warmup', '0']);
    expect(r.code).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => !l.startsWith('soak: checkpoint')); // progress before the error
    expect(lines[0]).toBe('custodian soak: soak(): the task threw on iteration 3: order 3 has no items');
    expect(r.stderr).toMatch(/at broken \(.*test\/soak\/fixtures\/module\.mjs:\d+:\d+\)/);
    expect(r.stdout).toBe('');
  });
});

describe('custodian soak on a terminal', () => {
  // `script` (util-linux) runs the CLI on a pseudo-terminal, so that stderr is a TTY.
  const hasScript = (() => {
    try {
      execFileSync('script', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  it.runIf(process.platform === 'linux' && (hasScript || process.env.CI === 'true'))(
    'draws a progress bar in place, and clears it before the report',
    () => {
      const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} soak ${fixtures}/module.mjs --export steady --iterations 3000 > /dev/null`;
      const out = execFileSync('script', ['-qec', command, '/dev/null'], { cwd: root, encoding: 'utf8' });
      expect(out).toMatch(/\rsoak \[#+\.*\] \d+\/3300 iterations/);
      expect(out).toMatch(/\(checkpoint \d+\/12: heapUsed [\d.]+ MiB, rss [\d.]+ MiB\)/);
      expect(out.endsWith('\r\x1b[K')).toBe(true); // the bar erased
      expect(out).not.toContain('soak: checkpoint');
    },
  );
});

/** Starts the fixture server (keeping `leakBytes` per request) and resolves with it and its port. */
async function startServer(leakBytes: number): Promise<{ server: ChildProcess; port: number }> {
  const server = spawn(process.execPath, [join(root, fixtures, 'leaky-server.cjs')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LEAK_BYTES: String(leakBytes) },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.stdout?.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    server.once('error', reject);
  });
  return { server, port };
}

describe('custodian soak --url', () => {
  let server: ChildProcess;
  let port: number;
  beforeAll(async () => {
    ({ server, port } = await startServer(4096));
  });
  afterAll(() => {
    server.kill('SIGTERM');
  });

  it('a server that keeps nothing: exit 0', async () => {
    const { server: steady, port: steadyPort } = await startServer(0);
    try {
      const r = await run(['soak', '--url', `http://127.0.0.1:${steadyPort}/`, '--pid', String(steady.pid), '--requests', '2000']);
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toMatch(/verdict: (STABLE|BOUNDED) — uss/);
    } finally {
      steady.kill('SIGTERM');
    }
  });

  it('drives a leaky node:http server with keep-alive requests and finds its USS growing: exit 1, JSON and chart', async () => {
    const json = join(dir as string, 'server.json');
    const svg = join(dir as string, 'server.svg');
    const url = `http://127.0.0.1:${port}/items`;
    const r = await run([
      'soak',
      '--url',
      url,
      '--pid',
      String(server.pid),
      '--requests',
      '3000',
      '--concurrency',
      '2',
      '--json',
      json,
      '--svg',
      svg,
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^ +requests +ms +rss +pss +uss$/m);
    expect(r.stdout).toMatch(/verdict: LEAKING — uss grows \d+ B\/request/);
    const result = JSON.parse(readFileSync(json, 'utf8')) as SoakResult;
    expect(result.target).toEqual({ kind: 'url', url, pid: server.pid });
    expect(result.decidedBy).toBe('uss');
    expect(result.series.find((s) => s.name === 'heapUsed')).toMatchObject({
      available: false,
      reason: 'not visible from outside the process',
    });
    // 4 KiB kept per request; the server's own garbage and page granularity blur it, not by half.
    expect(result.rate.bytesPerIteration).toBeGreaterThan(2048);
    const chart = readFileSync(svg, 'utf8');
    assertWellFormedXml(chart);
    for (const name of ['rss', 'pss', 'uss']) expect(chart).toContain(`data-series="${name}"`);
    expect(chart).toContain('resident memory of the server (MiB)');
  });
});

describe('custodian soak: bad input is one line on stderr and exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'a module that does not exist',
      ['soak', 'no/such/module.mjs'],
      /^custodian soak: cannot find module no\/such\/module\.mjs \(looked for .*no\/such\/module\.mjs\)$/,
    ],
    [
      'an export that is not a function',
      ['soak', `${fixtures}/module.mjs`, '--export', 'answer'],
      /^custodian soak: test\/soak\/fixtures\/module\.mjs exports no function named 'answer' \(it is number\); functions it exports: broken, default, steady; pick one with --export$/,
    ],
    [
      '--iterations 0',
      ['soak', `${fixtures}/module.mjs`, '--iterations', '0'],
      /^custodian soak: --iterations must be a whole number from 1, got "0"$/,
    ],
    ['an unknown option', ['soak', `${fixtures}/module.mjs`, '--iteration', '5'], /^custodian soak: Unknown option '--iteration'/],
    [
      'a --url that is not loopback',
      ['soak', '--url', 'http://example.com/', '--pid', '1'],
      /^custodian soak: --url http:\/\/example\.com\/: example\.com is not a loopback address/,
    ],
    [
      'a --url that is https',
      ['soak', '--url', 'https://127.0.0.1/', '--pid', '1'],
      /^custodian soak: --url https:\/\/127\.0\.0\.1\/: only http:\/\/ is supported/,
    ],
    [
      'a --pid that does not exist',
      ['soak', '--url', 'http://127.0.0.1:9/', '--pid', '4194000'],
      /^custodian soak: --pid 4194000: no such process$/,
    ],
    ['--url without --pid', ['soak', '--url', 'http://127.0.0.1:9/'], /^custodian soak: --url needs --pid PID/],
    [
      'a refused port',
      ['soak', '--url', 'http://127.0.0.1:9/', '--pid', String(process.pid), '--requests', '10'],
      /^custodian soak: cannot reach http:\/\/127\.0\.0\.1:9\/: ECONNREFUSED/,
    ],
    ['no module', ['soak'], /^custodian soak: which module\?/],
  ];
  for (const [what, args, message] of cases) {
    it(what, async () => {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr.trimEnd()).toMatch(message);
      expect(r.stdout).toBe('');
    });
  }
});
