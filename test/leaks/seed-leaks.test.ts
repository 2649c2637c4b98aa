/**
 * The two leaks this project was born from (DESIGN.md, "The problem"), replayed as scenarios:
 *
 * (a) a Redis connection kept in per-task state and never released when the task ended;
 * (b) an event path (`pipeMessage`) after which the framework never fired its "task ended" hook, so
 *     everything bound to that task stayed alive forever.
 */
import { EventEmitter } from 'node:events';
import { beforeEach, describe, expect, it } from 'vitest';
import { configure, inspect, openScope, track, withScope, type Lease, type LeakReport, type Scope } from '../../src/index.js';
import { sweep } from '../../src/registry/sweep.js';
import { allowLeaksInEveryTest, collectReports, collectWarnings, flush, sleep, useCleanCustodian, sitesIn } from '../helpers.js';

useCleanCustodian({ leaks: 'reclaim' });
allowLeaksInEveryTest();
beforeEach(flush);

const siteOf = sitesIn(import.meta.url);

/** A stand-in for a Redis connection pool: it only counts what is out. */
class FakePool {
  outstanding = 0;
  created = 0;
  readonly returned = new Set<number>();
  #idle: number[] = [];

  acquire(): number {
    this.outstanding++;
    return this.#idle.pop() ?? ++this.created;
  }

  release(connection: number): void {
    this.outstanding--;
    this.returned.add(connection);
    this.#idle.push(connection);
  }
}

describe('seed leak (a): a resource stashed per task in module-level state and never released', () => {
  // The buggy application code: per-request state lives in a module-level map, keyed by request id,
  // and nothing ever deletes from it or releases the connection. The task ends; the connection stays.
  const pool = new FakePool();
  const perRequest = new Map<number, { redis: Lease<number> }>();

  async function handleRequest(requestId: number): Promise<string> {
    return withScope(
      async () => {
        const redis = track(pool.acquire(), { release: (c) => pool.release(c), kind: 'redis connection' }); // site:stash
        perRequest.set(requestId, { redis });
        await new Promise<void>((resolve) => setImmediate(resolve)); // the handler does some async work
        return `user ${requestId}`;
      },
      { name: 'GET /users/:id' },
    );
  }

  it('reclaims all 100 connections (the pool ends with 0 outstanding) and reports each with the acquiring line', async () => {
    const { reports, stop } = collectReports();
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => handleRequest(i)));
    stop();
    expect(answers).toHaveLength(100);
    expect(answers[42]).toBe('user 42');

    // The pool healed: without custodian, 100 connections would be out and the next acquire would wait forever.
    expect(pool.outstanding).toBe(0);
    expect(pool.created).toBe(100); // concurrent requests each needed their own connection
    expect(pool.returned.size).toBe(100);
    expect([...perRequest.values()].every(({ redis }) => redis.released)).toBe(true);

    // One report per request, each naming the exact line of the leaking acquire.
    const site = siteOf('stash', 'track');
    expect(reports).toHaveLength(100);
    for (const report of reports) {
      expect(report.type).toBe('unreleased');
      if (report.type !== 'unreleased') continue;
      expect(report.scope.name).toBe('GET /users/:id');
      expect(report.resources.map((r) => [r.kind, r.site])).toEqual([['redis connection', site]]);
      expect(report.message.split('\n')[1]).toMatch(
        new RegExp(`^  redis connection  x1  acquired at ${site.replace(/\./g, '\\.')}  held \\d+ ms$`),
      );
    }
    expect(new Set(reports.map((r) => (r as Extract<LeakReport, { type: 'unreleased' }>).scope.id)).size).toBe(100);
    expect(inspect().leases.outstanding).toBe(0);
    perRequest.clear();
  });

  it('warns once, not 100 times, when the same handler leaks on every request', async () => {
    configure({ leaks: 'warn', warningThrottleMs: 10_000 });
    const { warnings, stop } = collectWarnings();
    for (let i = 0; i < 100; i++) await handleRequest(1000 + i);
    await flush();
    stop();
    expect(pool.outstanding).toBe(0);
    expect(warnings.filter((w) => w.name === 'ResourceLeakWarning').map((w) => w.code)).toEqual(['CUSTODIAN_UNRELEASED']);
    perRequest.clear();
  });
});

describe('seed leak (b): a task whose end hook never runs', () => {
  // The framework: 'request' starts a task (opens its scope and binds a connection to it) and 'end'
  // finishes it (gives the connection back, closes the scope). 'message' does request → work → end;
  // 'pipeMessage' forgets to emit 'end'.
  function createServer(pool: FakePool) {
    const server = new EventEmitter();
    const tasks = new Map<number, { scope: Scope; redis: Lease<number> }>();
    const closing: Promise<void>[] = [];
    server.on('request', (id: number) => {
      const scope = openScope({ name: `task ${id}` }); // site:task-open
      const redis = scope.run(() => track(pool.acquire(), { release: (c) => pool.release(c), kind: 'redis connection' })); // site:task-conn
      tasks.set(id, { scope, redis });
    });
    server.on('end', (id: number) => {
      const task = tasks.get(id);
      tasks.delete(id);
      if (task !== undefined) closing.push(task.redis.release().then(() => task.scope.close()));
    });
    server.on('message', (id: number) => {
      server.emit('request', id);
      server.emit('end', id);
    });
    server.on('pipeMessage', (id: number) => {
      server.emit('request', id); // ... and no 'end': the task-ended hook never fires on this path
    });
    return { server, tasks, settled: () => Promise.all(closing) };
  }

  it('reports the never-ended task as stale, with the line that opened it and the connection it holds', async () => {
    configure({ staleScopeMs: 50 });
    const pool = new FakePool();
    const { server, tasks, settled } = createServer(pool);
    const { reports, stop } = collectReports();

    server.emit('message', 1);
    server.emit('message', 2);
    server.emit('pipeMessage', 3);
    server.emit('message', 4);
    await settled();
    expect(pool.outstanding).toBe(1); // task 3's connection: without custodian, held forever

    // staleScopeMs 50 sweeps every 25 ms, and the sweep takes that period off a scope's coarse age:
    // the scope is reported once really open 75 ms. Wait twice that.
    await sleep(150);
    sweep();
    const staleReports = reports.filter((r): r is Extract<LeakReport, { type: 'stale-scope' }> => r.type === 'stale-scope');
    expect(staleReports).toHaveLength(1);
    const [report] = staleReports;
    const stuck = tasks.get(3)?.scope;
    expect(report?.scope).toEqual({ id: stuck?.id, name: 'task 3', site: siteOf('task-open', 'openScope') });
    expect(report?.ageMs).toBeGreaterThanOrEqual(50);
    expect(report?.resources.map((r) => [r.kind, r.site])).toEqual([['redis connection', siteOf('task-conn', 'track')]]);
    expect(report?.message.split('\n').slice(0, 2)).toEqual([
      `scope "task 3" (#${stuck?.id}) has been open for at least ${Math.round(report?.ageMs ?? -1)} ms (staleScopeMs is 50); opened at ${siteOf('task-open', 'openScope')}; it holds 1 lease:`,
      `  redis connection  x1  acquired at ${siteOf('task-conn', 'track')}  held ${Math.round(report?.resources[0]?.heldMs ?? -1)} ms`,
    ]);

    // Only the stuck task is open; the others ended and gave their connection back.
    expect(inspect().scopes.oldest.map((s) => [s.name, s.stale, s.leases])).toEqual([['task 3', true, 1]]);

    // Closing it (the fix: end the task on every path) gives the connection back, with a follow-up.
    await stuck?.close();
    stop();
    expect(pool.outstanding).toBe(0);
    expect(reports.map((r) => r.type)).toEqual(['stale-scope', 'stale-scope-closed', 'unreleased']);
  });
});
