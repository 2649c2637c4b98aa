/**
 * close() leaves nothing running: a child process that creates the adapter, runs commands on the
 * shared client and on dedicated connections (a subscriber, a BLPOP, a leaked lease), closes it and
 * returns exits by itself within a second. The fixture is bundled with esbuild (CommonJS, so that
 * ioredis and generic-pool come along) and run with plain node.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithServer, probeRedis, REDIS, RUN_ID } from './redis-helpers.js';

const server = await probeRedis();
let dir = '';
let bundle = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custodian-redis-close-'));
  bundle = join(dir, 'close-exits.cjs');
  await build({
    entryPoints: [resolve('test/redis/fixtures/close-exits.ts')],
    outfile: bundle,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    logLevel: 'silent',
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeWithServer(server, `close() with Redis at ${REDIS.host}:${REDIS.port}`, () => {
  it('leaves no handle open: the process exits by itself within a second of close()', async () => {
    const child = spawn(process.execPath, ['--no-warnings', bundle, String(REDIS.port), `crt-${RUN_ID}-exit`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await new Promise<number | null>((done) => child.on('exit', (c) => done(c)));
    const exitedAt = Date.now();
    clearTimeout(killer);
    expect(stderr.replace(/ResourceLeakWarning[\s\S]*/, '')).toBe(''); // the leaked lease's warning, nothing else
    expect(code).toBe(0);
    const result = JSON.parse(stdout.trim()) as { value: string; popped: null; leaked: string; closedAt: number };
    expect(result).toMatchObject({ value: 'v', popped: null, leaked: 'PONG' });
    expect(exitedAt - result.closedAt).toBeLessThan(1_000);
  });
});
