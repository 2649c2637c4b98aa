/**
 * The library under hostile or unusual conditions: garbage collection through object graphs,
 * values thrown that are not Errors, tasks closed from outside, broken thenables, shared signals.
 * Each rule here was a bug once; each test failed before its fix.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import { configure, currentScope, inspect, openScope, track, withScope, type Lease, type Scope } from '../src/index.js';
import { sweep } from '../src/registry/sweep.js';
import { collectReports, collectWarnings, flush, sleep, useCleanCustodian, never, collectGarbage, busyWait } from './helpers.js';

useCleanCustodian({ leaks: 'reclaim' });

describe('the GC backstop sees through the objects that acquired a lease', () => {
  it('collects an unscoped lease stored on the object whose method acquired it (sites: always)', async () => {
    allowLeaks(); // the GC backstop is the subject
    configure({ sites: 'always' });
    const { reports, stop } = collectReports();
    const released: string[] = [];
    class Client {
      lease: Lease<string> | undefined;
      connect(): void {
        // The lease's unformatted stack would hold `this`, and `this` holds the lease.
        this.lease = track('socket', { release: (v) => void released.push(v), kind: 'client socket' });
      }
    }
    (() => new Client().connect())();
    await collectGarbage(() => released.length > 0);
    stop();
    expect(released).toEqual(['socket']);
    expect(reports.map((r) => r.type)).toEqual(['collected']);
  });

  it('lets a released lease kept by user code hold neither its resource nor its closed scope', async () => {
    const kept: Lease<object>[] = [];
    let resource: WeakRef<object> | undefined;
    let owner: WeakRef<Scope> | undefined;
    await withScope(async (scope) => {
      owner = new WeakRef(scope);
      const conn = { buffer: new Uint8Array(1 << 16) };
      resource = new WeakRef(conn);
      const lease = scope.track(conn, { release: () => void Object.assign(conn, { closed: true }), kind: 'conn' });
      kept.push(lease); // kept by mistake, e.g. in a request log
      await lease.release();
    });
    await collectGarbage(() => resource?.deref() === undefined && owner?.deref() === undefined);
    expect(kept).toHaveLength(1);
    expect(resource?.deref()).toBeUndefined();
    expect(owner?.deref()).toBeUndefined();
  });
});

describe('values thrown that are not Errors (a null-prototype object has no String())', () => {
  const weird = () => Object.assign(Object.create(null) as object, { code: 'EWEIRD' });

  it("keeps the body's error primary when a release throws one", async () => {
    const bodyError = new Error('handler failed');
    const outcome = await withScope((scope) => {
      scope.defer(() => {
        throw weird();
      });
      throw bodyError;
    }).catch((error: unknown) => error);
    expect(outcome).toBe(bodyError);
  });

  it('never lets an onLeak hook that throws one reach the task', async () => {
    allowLeaks(); // the hook needs a leak
    configure({
      onLeak: () => {
        throw weird();
      },
    });
    const warnings = collectWarnings();
    const result = await withScope(() => {
      track('conn', { release: () => {} });
      return 'ok';
    });
    await flush();
    warnings.stop();
    expect(result).toBe('ok');
    expect(warnings.warnings.map((w) => w.code)).toContain('CUSTODIAN_ONLEAK_THREW');
  });

  it('reports, without crashing, an async release started by `using` that rejects with one', async () => {
    const warnings = collectWarnings();
    const lease = track('socket', { release: () => Promise.reject(weird()), kind: 'socket' });
    lease[Symbol.dispose]();
    await flush();
    await flush();
    warnings.stop();
    expect(warnings.warnings.map((w) => w.code)).toEqual(['CUSTODIAN_RELEASE_FAILED']);
    expect(warnings.warnings[0]?.message).toContain('EWEIRD');
  });
});

describe('closing a scope from outside while its task runs is a cancellation', () => {
  it('destroys what the task holds (not handed back in use) and answers the task with the reason', async () => {
    const { reports, stop } = collectReports();
    const log: string[] = [];
    let handle: Scope | undefined;
    const task = withScope(
      async (scope) => {
        handle = scope;
        scope.track('conn', { release: () => void log.push('released'), destroy: () => void log.push('destroyed'), kind: 'conn' });
        await sleep(30);
        return 'finished';
      },
      { name: 'job' },
    );
    await sleep(5);
    await handle?.close();
    expect(log).toEqual(['destroyed']);
    const outcome = await task.catch((error: unknown) => error);
    stop();
    expect(outcome).toMatchObject({
      code: 'ERR_CUSTODIAN_SCOPE_CLOSED',
      message: 'scope "job" (#' + String(handle?.id) + ') was closed while its task was still running',
    });
    expect(reports.map((r) => (r.type === 'unreleased' ? r.cancelled : r.type))).toEqual([true]);
  });

  it('answers a task that never settles at once when its scope can be cancelled', async () => {
    let handle: Scope | undefined;
    const task = withScope(
      async (scope) => {
        handle = scope;
        await never();
      },
      { timeout: 60_000 },
    );
    await sleep(1);
    await handle?.close();
    const outcome = await Promise.race([task.catch((error: unknown) => error), sleep(200).then(() => 'no answer')]);
    expect(outcome).toMatchObject({ code: 'ERR_CUSTODIAN_SCOPE_CLOSED' });
  });

  it('stays an ordinary close when the task closes its own scope', async () => {
    allowLeaks(); // its unreleased report is checked
    const { reports, stop } = collectReports();
    const log: string[] = [];
    const result = await withScope(async (scope) => {
      scope.track('conn', { release: () => void log.push('released'), destroy: () => void log.push('destroyed') });
      await sleep(1);
      await scope.close();
      return 'done';
    });
    stop();
    expect(result).toBe('done');
    expect(log).toEqual(['released']);
    expect(reports.map((r) => (r.type === 'unreleased' ? r.cancelled : r.type))).toEqual([false]);
  });

  it('does not answer before a release still running when a cleanup cancels the closing scope', async () => {
    const log: string[] = [];
    let handle: Scope | undefined;
    const task = withScope(
      async (scope) => {
        handle = scope;
        scope.adopt('conn', async () => {
          await sleep(30);
          log.push('conn released');
        });
        scope.defer(() => scope.cancel(new Error('shutdown')));
        await never();
      },
      { timeout: 60_000 },
    );
    await null;
    void handle?.close();
    await task.catch(() => log.push('task answered'));
    expect(log).toEqual(['conn released', 'task answered']);
  });
});

describe('a cancelled task is cleaned up in its own context', () => {
  it("runs its releases in its parent's scope, not in the scope of whoever aborted its signal", async () => {
    const stop = new AbortController();
    let releasedIn: string | undefined = 'not run';
    const b = withScope(
      async (scope) => {
        scope.track('conn', { release: () => {}, destroy: () => void (releasedIn = currentScope()?.name) });
        await never();
      },
      { name: 'request B', signal: stop.signal },
    ).catch(() => undefined);
    await withScope(
      async () => {
        stop.abort(new Error('shutdown requested by request A'));
      },
      { name: 'request A' },
    );
    await b;
    expect(releasedIn).toBeUndefined(); // B is a root scope: no scope, and certainly not A
  });
});

describe('thenables', () => {
  it('closes a cancellable scope whose body returns a thenable whose then() throws', async () => {
    const broken = {
      then() {
        throw new Error('broken thenable');
      },
    };
    const before = inspect().scopes.open;
    const outcome = await withScope(() => broken, { timeout: 60_000 }).catch((error: unknown) => (error as Error).message);
    expect(outcome).toBe('broken thenable');
    expect(inspect().scopes.open).toBe(before);
  });
});

describe('a scope opened under a cancelled scope arms nothing', () => {
  it('sets no timer and no signal listener that would outlive its cancellation', async () => {
    const outer = new AbortController();
    const parent = openScope();
    parent.cancel(new Error('stop'));
    const child = parent.fork({ timeout: 30_000, signal: outer.signal });
    expect(child.signal.aborted).toBe(true);
    expect(getEventListeners(outer.signal, 'abort')).toHaveLength(0);
    // No timer: the active handles hold no 30 s timeout for it.
    const timers = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === 'Timeout');
    await parent.close();
    const after = (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((r) => r === 'Timeout');
    expect(after.length).toBe(timers.length);
  });
});

describe('growth suspects', () => {
  it('are forgotten once nothing is outstanding', async () => {
    configure({ growthIntervalMs: 1, growthSamples: 2 });
    const held: Lease<number>[] = [];
    for (let i = 0; i < 4; i++) {
      held.push(track(i, { release: () => {}, kind: 'conn' }));
      busyWait(2); // let the lease age past the interval
      sweep();
    }
    expect(inspect().suspects).toHaveLength(1);
    await Promise.all(held.map((lease) => lease.release()));
    sweep(); // nothing open: the sweep goes idle
    expect(inspect().suspects).toEqual([]);
  });
});
