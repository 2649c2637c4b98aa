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
