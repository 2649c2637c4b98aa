/**
 * The README's first command runs this demo; it must keep working and keep showing what it claims.
 * Runs the built demo (npm test builds first) in a child process, as `npm run demo` does.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../', import.meta.url));

describe('npm run demo', () => {
  it('drains the pool without custodian, reclaims every leak with it, and reports the stale task', async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--enable-source-maps', 'dist/examples/demo.js'], {
      cwd: root,
      timeout: 20_000,
    });
    expect(stdout).toContain('timeout acquiring a connection, the pool is probably full');
    expect(stdout).toMatch(/2\) leaky handler[\s\S]*pool outstanding: 0\/10; custodian reclaimed 10/);
    expect(stdout).toMatch(/4\) fixed handler[\s\S]*custodian reclaimed 0/);
    expect(stderr).toMatch(/ResourceLeakWarning: scope "GET \/users\/:id" \(#\d+\) closed with 1 unreleased resource \(reclaimed\)/);
    expect(stderr).toMatch(/acquired at examples\/demo\.ts:\d+:\d+/);
    expect(stderr).toMatch(/\[CUSTODIAN_STALE_SCOPE\] ResourceLeakWarning: scope "pipeMessage #\d+" \(#\d+\) has been open for at least/);
  });
});

describe('npm run demo:pool', () => {
  it('fails fast without a retry loop, hands nothing to a waiter that gave up, and resets a leaked connection', async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--enable-source-maps', 'dist/examples/pool.js'], {
      cwd: root,
      timeout: 20_000,
    });
    expect(stdout).toMatch(/20\/20 failed in \d+ ms \(acquireTimeoutMs is 5000\): PoolCreateError/);
    expect(stdout).toContain('4 connection attempts for 20 requests; 0 more in the next 100 ms');
    expect(stdout).toContain('cause: connect ECONNREFUSED 127.0.0.1:3306');
    expect(stdout).toMatch(/the impatient request: TimeoutError: scope "GET \/fast" \(#\d+\) timed out after 20 ms/);
    expect(stdout).toContain(
      'after the slow ones finished: {"size":4,"available":4,"borrowed":0,"pending":0,"destroying":0,"min":0,"max":4}',
    );
    expect(stdout).toMatch(/connection (\d+) leaked in a transaction; the next request got connection \1, in a transaction: false/);
    expect(stderr).toMatch(
      /ResourceLeakWarning: scope "POST \/orders" \(#\d+\) closed with 1 unreleased resource \(reclaimed\)\n {2}mysql connection \(mysql\) {2}x1 {2}acquired at examples\/pool\.ts:\d+:\d+/,
    );
  });
});
