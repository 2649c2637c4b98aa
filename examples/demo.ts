/**
 * custodian demo: `npm run demo`. No database and no network: a fake pool of 10 connections
 * (examples/fake-pool.ts) and 20 requests per handler, every other one for a user that does not exist.
 *
 *   1. a handler that forgets to release its connection on an error path, without custodian;
 *   2. the same handler with its connection tracked, run in withScope;
 *   3. a handler that keeps its connection in module state;
 *   4. the fixed handler (`await using`);
 *   5. a task whose "task ended" hook never runs (a stale scope), then inspect().
 *
 * `npm run demo` runs the compiled dist/examples/demo.js with --enable-source-maps, so the reports
 * name lines of this file. Start your own service with that flag too.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { configure, inspect, openScope, track, withScope, type Lease } from '../src/index.js';
import { FakePool, type Connection } from './fake-pool.js';

type Handler = (pool: FakePool, id: number) => Promise<string>;

// --- the handlers -----------------------------------------------------------------------------

/** Before custodian: on the "not found" path the connection never goes back to the pool. */
async function leakyWithoutCustodian(pool: FakePool, id: number): Promise<string> {
  const conn = await pool.connect();
  const name = await conn.query(id);
  if (name === undefined) throw new Error(`user ${id} not found`); // leaves without pool.release(conn)
  pool.release(conn);
  return name;
}

/** The same bug, with the connection tracked: custodian knows who holds it and which line took it. */
async function leaky(pool: FakePool, id: number): Promise<string> {
  const conn = track(await pool.connect(), pool.lease);
  const name = await conn.value.query(id);
  if (name === undefined) throw new Error(`user ${id} not found`); // leaves without conn.release()
  await conn.release();
  return name;
}

/** Keeps its connection in module state to "reuse" it: the connection outlives its request. */
let kept: Lease<Connection> | undefined;
async function stashing(pool: FakePool, id: number): Promise<string> {
  kept ??= track(await pool.connect(), pool.lease);
  return (await kept.value.query(id)) ?? 'nobody';
}

/** The fix: `await using` releases the connection on every path, the error path included. */
async function fixed(pool: FakePool, id: number): Promise<string> {
  await using conn = track(await pool.connect(), pool.lease);
  const name = await conn.value.query(id);
  if (name === undefined) throw new Error(`user ${id} not found`);
  return name;
}

// --- running them ------------------------------------------------------------------------------

let reclaimed = 0;

function failureText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.message.endsWith('not found') ? 'user not found' : `${error.name}: ${error.message}`;
}

/** Runs 20 requests of `handler` on a fresh pool, each in its own scope unless `scoped` is false. */
async function batch(title: string, handler: Handler, scoped = true): Promise<void> {
  console.log(title);
  const pool = new FakePool({ max: 10 });
  const failures = new Map<string, number>();
  reclaimed = 0;
  for (let id = 1; id <= 20; id++) {
    try {
      await (scoped ? withScope(() => handler(pool, id), { name: 'GET /users/:id' }) : handler(pool, id));
    } catch (error) {
      const text = failureText(error);
      failures.set(text, (failures.get(text) ?? 0) + 1);
    }
  }
  await sleep(5); // custodian's warnings are printed on the next tick: let them come first
  const failed = [...failures].map(([text, n]) => `${n} x ${text}`).join(', ');
  console.log(`   => failed: ${failed || 'none'}`);
  const note = !scoped
    ? ''
    : `; custodian reclaimed ${reclaimed}${reclaimed > 1 ? ' (one warning: identical ones are throttled for 10 s)' : ''}`;
  console.log(`   => pool outstanding: ${pool.outstanding}/${pool.max}${note}`);
}

/** A framework's task hooks: the task's connection lives in its scope; end() gives it back. */
async function startTask(pool: FakePool, name: string): Promise<{ end(): Promise<void> }> {
  const scope = openScope({ name });
  const conn = scope.track(await pool.connect(), pool.lease);
  return {
    end: async () => {
      await conn.release();
      await scope.close();
    },
  };
}

const round = (_key: string, value: unknown) => (typeof value === 'number' ? Math.round(value) : value);

let staleReported: () => void = () => {};
const stale = new Promise<void>((resolve) => (staleReported = resolve));

async function main(): Promise<void> {
  configure({
    sites: 'always', // the default, unless NODE_ENV=production
    staleScopeMs: 200, // default 60 s; short here so that the demo does not wait a minute
    onLeak: (report) => {
      if (report.type === 'unreleased') reclaimed += report.resources.length;
      if (report.type === 'stale-scope') staleReported();
    },
  });
  console.log('custodian demo: a pool of 10 connections, 20 requests per handler, odd user ids do not exist\n');

  await batch('1) leaky handler, without custodian', leakyWithoutCustodian, false);
  await batch('2) leaky handler, connection tracked, each request in withScope', leaky);
  await batch('3) handler that keeps its connection in module state, in withScope', stashing);
  await batch('4) fixed handler (await using), in withScope', fixed);

  console.log('5) a task whose "task ended" hook never runs (staleScopeMs: 200)');
  const pool = new FakePool({ max: 10 });
  const request = await startTask(pool, 'request #1');
  await request.end(); // the framework ran the end hook: nothing to report
  await startTask(pool, 'pipeMessage #2'); // after a pipeMessage event, the framework never calls end()
  // The sweep reports it once it has seen the scope open for 200 ms: wait for that (at most 2 s).
  await Promise.race([stale, sleep(2000)]);
  await sleep(5); // the warning is printed on the next tick
  console.log(`   => pool outstanding: ${pool.outstanding}/${pool.max}\n`);

  const snapshot = inspect();
  console.log(`inspect(): ${snapshot.scopes.open} open scope(s), ${snapshot.leases.outstanding} outstanding lease(s)`);
  for (const scope of snapshot.scopes.oldest) console.log(`  scope ${JSON.stringify(scope, round)}`);
  for (const site of snapshot.leases.bySite) console.log(`  site  ${JSON.stringify(site, round)}`);

  console.log(
    '\nWhat you saw: without custodian the leaky handler drained the pool; in withScope every leaked connection went back at request end, ' +
      'with one throttled warning naming the line that acquired it; the kept connection was reclaimed and reusing it failed loudly; ' +
      'the fixed handler reported nothing; the task whose end hook never ran was reported as a stale scope, and inspect() still shows it.',
  );
}

await main();
