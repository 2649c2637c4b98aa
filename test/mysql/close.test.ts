/**
 * close() leaves nothing open: a child process that creates a client, uses it and closes it exits
 * by itself (no `process.exit`), quickly. Bundled with esbuild first, since the child runs plain Node.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { bundleFixture } from '../bundle.js';
import { describeWithServer, probeMysql } from '../integration/servers.js';

const server = await probeMysql();
const dir = mkdtempSync(join(tmpdir(), 'custodian-mysql-close-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeWithServer(server, 'custodian/mysql close()', () => {
  it('a child process that creates, queries and closes exits by itself, with every connection gone', async () => {
    const outfile = join(dir, 'close.mjs');
    await bundleFixture('test/mysql/fixtures/close.ts', outfile);
    const t0 = performance.now();
    // The timeout kills a child that hangs: the test then fails on the error.
    const { stdout } = await promisify(execFile)(process.execPath, [outfile], { timeout: 10_000 });
    expect(performance.now() - t0).toBeLessThan(5_000);
    const { stats } = JSON.parse(stdout.trim()) as { stats: Record<string, number> };
    expect(stats).toMatchObject({ size: 0, borrowed: 0, available: 0, pending: 0, destroying: 0 });
  });
});
