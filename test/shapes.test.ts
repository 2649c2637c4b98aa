/**
 * A major GC between tasks must not throw away custodian's optimized code. V8 holds a class's
 * object shape only as long as an instance lives; custodian's scopes, closes, cleanups, leases and
 * waiters live for one task, so a full GC with none alive dropped their shapes and deoptimized
 * every function compiled against them ("weak objects" in `--trace-deopt`): `withScope` then ran
 * 5–10x slower for the next tens of thousands of calls. src/util/shapes.ts keeps one of each.
 *
 * The fixture (run by deopts.ts) warms the paths up, forces full collections with nothing alive, and
 * runs them again; V8's deopt trace must not name a custodian function deoptimized for that reason.
 */
import { expect, it } from 'vitest';
import { weakObjectDeopts } from './deopts.js';

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
  expect(await weakObjectDeopts('test/fixtures/shapes.ts', HOT)).toEqual([]);
});
