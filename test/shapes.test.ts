/**
 * A major GC between tasks must not throw away custodian's optimized code. V8 holds a class's
 * object shape only as long as an instance lives; custodian's scopes, closes, cleanups, leases and
 * waiters live for one task, so a full GC with none alive dropped their shapes and deoptimized
 * every function compiled against them ("weak objects" in `--trace-deopt`): `withScope` then ran
 * 5–10x slower for the next tens of thousands of calls. src/util/shapes.ts keeps one of each.
 *
 * The fixture is bundled with esbuild (the child runs plain Node), warms the paths up, forces full
 * collections with nothing alive, and runs them again; the deopt trace between its markers must not
 * name a custodian function deoptimized for that reason.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'custodian-shapes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Functions of the hot paths (a few names, like `run` or `push`, are too common to tell apart). */
const HOT = new Set([
  'withScope',
  'runTask',
  'after',
  'createScope',
  'ScopeNode',
  'startClose',
  'defer',
  'add',
  'track',
  'trackAt',
  'Closer',
  '#begin',
  '#drive',
  '#releaseEntries',
  '#release',
  '#finish',
  'liveChild',
  'Cleanup',
  'createLease',
  'openLease',
  'LeaseState',
  'LeaseHandle',
  'finish',
  'attach',
  'detach',
  'addScope',
  'removeScope',
  'addLease',
  'removeLease',
  'append',
  'unlink',
  'Waiter',
  '#route',
  '#lend',
  '#takeIdle',
  '#offer',
  '#reconcile',
  '#leaseEnded',
]);

it('a full GC with no scope or lease alive deoptimizes none of the hot paths', { timeout: 60_000 }, async () => {
  const outfile = join(dir, 'shapes.mjs');
  await build({
    entryPoints: [resolve('test/fixtures/shapes.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'silent',
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--expose-gc', '--trace-deopt', outfile], {
    timeout: 50_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  expect(stderr.trim()).toBe('ok');
  const start = stdout.indexOf('--- collecting ---');
  const end = stdout.indexOf('--- done ---');
  expect(start).toBeGreaterThan(-1);
  expect(end).toBeGreaterThan(start);
  const dropped = [
    ...stdout
      .slice(start, end)
      .matchAll(/<SharedFunctionInfo ([^>]*)>\) \(opt id \d+\) for deoptimization, reason: (?:embedded )?weak objects/g),
  ]
    .map((m) => m[1] as string)
    .filter((name) => HOT.has(name));
  expect(dropped).toEqual([]);
});
