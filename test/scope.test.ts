import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import { configure, flattenSuppressed, openScope, ScopeClosedError, withScope, type LeakReport, type Scope } from '../src/index.js';
import {
  collectReports,
  collectWarnings,
  flush,
  openScopeCount,
  sleep,
  useCleanCustodian,
  thrownBy,
  never,
  gate,
  rejectionOf,
} from './helpers.js';

useCleanCustodian({ leaks: 'reclaim' });

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */

function releaseTimeouts(reports: readonly LeakReport[]) {
  return reports.filter((r): r is Extract<LeakReport, { type: 'release-timeout' }> => r.type === 'release-timeout');
}

describe('closing releases everything a scope owns in LIFO order', () => {
  it('releases use, adopt, defer and track entries newest first', async () => {
    allowLeaks(); // the scope releases the tracked lease, in order
    const log: string[] = [];
    const scope = openScope();
    scope.defer(() => log.push('defer 1'));
    scope.use({ [Symbol.dispose]: () => void log.push('use sync') });
    scope.adopt('adopted', (v) => log.push(v));
    scope.track('tracked', { release: (v) => void log.push(v) });
    scope.use({ [Symbol.asyncDispose]: async () => void log.push('use async') });
    scope.defer(() => log.push('defer 2'));
    await scope.close();
    expect(log).toEqual(['defer 2', 'use async', 'tracked', 'adopted', 'use sync', 'defer 1']);
  });

  it('waits for an async release before starting the next, older one', async () => {
    const log: string[] = [];
    const scope = openScope();
    scope.defer(() => log.push('older'));
    scope.defer(async () => {
      await sleep(10);
      log.push('newer (async, finished)');
    });
    await scope.close();
    expect(log).toEqual(['newer (async, finished)', 'older']);
  });

  it('closes a child scope before the parent\u2019s own resources, even those acquired after the child', async () => {
    const log: string[] = [];
    const parent = openScope({ name: 'parent' });
    parent.defer(() => log.push('parent before fork'));
    const child = parent.fork({ name: 'child' });
    child.defer(() => log.push('child'));
    parent.defer(() => log.push('parent after fork'));
    await parent.close();
    expect(log).toEqual(['child', 'parent after fork', 'parent before fork']);
    expect(child.state).toBe('closed');
  });

  it('closes children newest first, and grandchildren before their parent', async () => {
    const log: string[] = [];
    const root = openScope();
    root.defer(() => log.push('root'));
    const first = root.fork();
    first.defer(() => log.push('first'));
    const grandchild = first.fork();
    grandchild.defer(() => log.push('grandchild'));
    const second = root.fork();
    second.defer(() => log.push('second'));
    await root.close();
    expect(log).toEqual(['second', 'grandchild', 'first', 'root']);
    expect([root.state, first.state, grandchild.state, second.state]).toEqual(['closed', 'closed', 'closed', 'closed']);
  });

  it('closes a fork() that was never closed when the parent closes, and aborts its signal', async () => {
    const log: string[] = [];
    const parent = openScope();
    parent.defer(() => log.push('parent'));
    const child = parent.fork();
    const childSignal = child.signal;
    child.adopt('child resource', (v) => log.push(v));
    const before = openScopeCount();
    await parent.close();
    expect(log).toEqual(['child resource', 'parent']);
    expect(child.state).toBe('closed');
    expect(childSignal.aborted).toBe(true);
    expect(openScopeCount()).toBe(before - 2);
  });

  it('closes the scope of an un-awaited nested withScope before the outer scope\u2019s resources', async () => {
    const log: string[] = [];
    const hold = gate();
    let inner: Scope | undefined;
    let innerTask: Promise<unknown> | undefined;
    await withScope(async (outer) => {
      outer.defer(() => log.push('outer'));
      innerTask = withScope(async (scope) => {
        inner = scope;
        scope.defer(() => log.push('inner'));
        await hold.promise;
      });
      innerTask.catch(() => {}); // whatever it settles with, this test is about the order
      await sleep(1);
    });
    expect(log).toEqual(['inner', 'outer']);
    expect(inner?.state).toBe('closed');
    hold.open();
    await innerTask?.catch(() => {});
  });

  it('waits for an async release of a child before releasing the parent\u2019s resources', async () => {
    const log: string[] = [];
    const parent = openScope();
    parent.defer(() => log.push('parent'));
    const child = parent.fork();
    child.defer(async () => {
      await sleep(10);
      log.push('child (async)');
    });
    await parent.close();
    expect(log).toEqual(['child (async)', 'parent']);
  });
});

describe('every release runs even when some fail', () => {
  it('runs every release when some throw synchronously', async () => {
    const ran: number[] = [];
    const scope = openScope();
    for (let i = 1; i <= 4; i++) {
      scope.defer(() => {
        ran.push(i);
        if (i % 2 === 0) throw new Error(`release ${i}`);
      });
    }
    await expect(scope.close()).rejects.toBeDefined();
    expect(ran).toEqual([4, 3, 2, 1]);
  });

  it('runs every release when some reject', async () => {
    const ran: number[] = [];
    const scope = openScope();
    for (let i = 1; i <= 4; i++) {
      scope.defer(async () => {
        ran.push(i);
        if (i % 2 === 1) throw new Error(`release ${i}`);
      });
    }
    await expect(scope.close()).rejects.toBeDefined();
    expect(ran).toEqual([4, 3, 2, 1]);
  });

  it('rejects close() with the one failing release\u2019s error, as is', async () => {
    const failure = new Error('only one');
    const scope = openScope();
    scope.defer(() => {});
    scope.defer(() => {
      throw failure;
    });
    scope.defer(() => {});
    expect(await rejectionOf(scope.close())).toBe(failure);
  });

  it('rejects with a rejecting async release\u2019s reason, as is', async () => {
    const failure = new Error('async one');
    const scope = openScope();
    scope.defer(() => Promise.reject(failure));
    expect(await rejectionOf(scope.close())).toBe(failure);
  });

  it('folds several release errors into a SuppressedError chain: error is the last thrown, suppressed the earlier', async () => {
    const oldest = new Error('released first (acquired last)');
    const middle = new Error('released second');
    const last = new Error('released last (acquired first)');
    const scope = openScope({ name: 'folding' });
    scope.defer(() => {
      throw last;
    });
    scope.defer(() => Promise.reject(middle));
    scope.defer(() => {
      throw oldest;
    });
    const error = await rejectionOf(scope.close());
    expect(error).toBeInstanceOf(Error);
    if (!isRecord(error)) throw new Error('unreachable');
    expect(error['name']).toBe('SuppressedError');
    expect(error['error']).toBe(last);
    const inner = error['suppressed'];
    if (!isRecord(inner)) throw new Error('suppressed should be a SuppressedError');
    expect(inner['name']).toBe('SuppressedError');
    expect(inner['error']).toBe(middle);
    expect(inner['suppressed']).toBe(oldest);
    expect(flattenSuppressed(error)).toEqual([oldest, middle, last]);
  });

  it('counts a failing child scope\u2019s error among the parent\u2019s release errors and still releases the parent', async () => {
    const childError = new Error('child release');
    const parentError = new Error('parent release');
    const log: string[] = [];
    const parent = openScope();
    parent.defer(() => log.push('parent ok'));
    parent.defer(() => {
      throw parentError;
    });
    const child = parent.fork();
    child.defer(() => {
      throw childError;
    });
    const error = await rejectionOf(parent.close());
    expect(flattenSuppressed(error)).toEqual([childError, parentError]);
    expect(log).toEqual(['parent ok']);
  });
});

describe('every release runs even when some fail: async child failures', () => {
  it('counts an asynchronously failing child scope\u2019s error among the parent\u2019s release errors', async () => {
    const childError = new Error('child release rejected');
    const log: string[] = [];
    const parent = openScope();
    parent.defer(() => log.push('parent ok'));
    const child = parent.fork();
    child.defer(async () => {
      await sleep(1);
      throw childError;
    });
    expect(await rejectionOf(parent.close())).toBe(childError);
    expect(log).toEqual(['parent ok']);
    expect(child.state).toBe('closed');
  });
});

describe('closing twice is harmless', () => {
  it('resolves the second close and runs each release once (sync releases)', async () => {
    let calls = 0;
    const scope = openScope();
    scope.defer(() => void calls++);
    await scope.close();
    await expect(scope.close()).resolves.toBeUndefined();
    expect(calls).toBe(1);
  });

  it('lets a second close() during an async close wait for the same releases, run once', async () => {
    const log: string[] = [];
    const scope = openScope();
    scope.defer(async () => {
      await sleep(10);
      log.push('released');
    });
    const first = scope.close();
    const second = scope.close();
    await second;
    expect(log).toEqual(['released']);
    await first;
    expect(log).toEqual(['released']);
  });

  it('resolves a second close after the first one rejected with release errors', async () => {
    const scope = openScope();
    scope.defer(() => {
      throw new Error('boom');
    });
    await expect(scope.close()).rejects.toThrow('boom');
    await expect(scope.close()).resolves.toBeUndefined();
  });
});

describe('re-entrant close', () => {
  it('completes when a child\u2019s synchronous release closes the parent', async () => {
    const log: string[] = [];
    const parent = openScope({ name: 're-entrant parent' });
    parent.defer(() => log.push('parent'));
    const child = parent.fork();
    let cancels = 0;
    const cancel = child.cancel.bind(child);
    child.cancel = (reason?: unknown) => {
      if (++cancels > 100) throw new Error('parent.close() spins on its closing child');
      cancel(reason);
    };
    let parentClosing: Promise<void> | undefined;
    child.defer(() => {
      log.push('child');
      parentClosing = parent.close();
    });
    await child.close();
    await parentClosing;
    expect(cancels).toBeLessThanOrEqual(1);
    expect(log).toEqual(['child', 'parent']);
    expect([child.state, parent.state]).toEqual(['closed', 'closed']);
  });

  it('treats a scope\u2019s own close() called from one of its releases as a harmless no-op', async () => {
    const log: string[] = [];
    const scope = openScope();
    scope.defer(() => log.push('older'));
    scope.defer(() => {
      log.push('newer');
      void scope.close();
    });
    await scope.close();
    expect(log).toEqual(['newer', 'older']);
    expect(scope.state).toBe('closed');
  });
});

describe('state and close()', () => {
  it('goes open \u2192 closing \u2192 closed', async () => {
    const seen: string[] = [];
    const scope = openScope();
    seen.push(scope.state);
    scope.defer(async () => {
      seen.push(scope.state);
      await sleep(1);
      seen.push(scope.state);
    });
    const closing = scope.close();
    seen.push(scope.state);
    await closing;
    seen.push(scope.state);
    expect(seen).toEqual(['open', 'closing', 'closing', 'closing', 'closed']);
  });

  it('returns a promise from close()', async () => {
    const empty = openScope();
    const result = empty.close();
    expect(result).toBeInstanceOf(Promise);
    await result;
    const failing = openScope();
    failing.defer(() => {
      throw new Error('sync failure');
    });
    const rejected = failing.close();
    expect(rejected).toBeInstanceOf(Promise);
    await expect(rejected).rejects.toThrow('sync failure');
  });

  it('is closed right after close() returns when every release is synchronous', () => {
    allowLeaks(); // the scope releases the tracked lease
    const log: string[] = [];
    const scope = openScope();
    scope.defer(() => log.push('a'));
    scope.adopt('b', (v) => log.push(v));
    scope.track('c', { release: (v) => void log.push(v) });
    void scope.close();
    expect(scope.state).toBe('closed');
    expect(log).toEqual(['c', 'b', 'a']);
  });

  it('is still closing right after close() returns when a release is asynchronous', async () => {
    const scope = openScope();
    scope.defer(() => sleep(1));
    const closing = scope.close();
    expect(scope.state).toBe('closing');
    await closing;
    expect(scope.state).toBe('closed');
  });

  it('removes the scope from the open scopes once closed', async () => {
    const before = openScopeCount();
    const scope = openScope();
    expect(openScopeCount()).toBe(before + 1);
    await scope.close();
    expect(openScopeCount()).toBe(before);
  });
});

describe('acquiring into a closing or closed scope throws ScopeClosedError and releases the value at once', () => {
  function expectClosedError(error: unknown, name: string, state: 'closing' | 'closed'): void {
    expect(error).toBeInstanceOf(ScopeClosedError);
    if (!(error instanceof ScopeClosedError)) return;
    expect(error.name).toBe('ScopeClosedError');
    expect(error.code).toBe('ERR_CUSTODIAN_SCOPE_CLOSED');
    expect(error.message).toContain(`"${name}"`);
    expect(error.message).toContain(`it is ${state}`);
  }

  async function closedScope(name: string): Promise<Scope> {
    const scope = openScope({ name });
    await scope.close();
    return scope;
  }

  it('track(): throws and releases the value once', async () => {
    const scope = await closedScope('closed track');
    const released: string[] = [];
    const error = thrownBy(() => scope.track('conn', { release: (v) => void released.push(v) }));
    expectClosedError(error, 'closed track', 'closed');
    expect(released).toEqual(['conn']);
  });

  it('use(): throws and disposes the value once', async () => {
    const scope = await closedScope('closed use');
    let disposed = 0;
    const error = thrownBy(() => scope.use({ [Symbol.dispose]: () => void disposed++ }));
    expectClosedError(error, 'closed use', 'closed');
    expect(disposed).toBe(1);
  });

  it('use(): throws and async-disposes the value once', async () => {
    const scope = await closedScope('closed use async');
    let disposed = 0;
    const error = thrownBy(() => scope.use({ [Symbol.asyncDispose]: async () => void disposed++ }));
    expectClosedError(error, 'closed use async', 'closed');
    expect(disposed).toBe(1);
  });

  it('adopt(): throws and releases the value once', async () => {
    const scope = await closedScope('closed adopt');
    const released: string[] = [];
    const error = thrownBy(() => scope.adopt('value', (v) => released.push(v)));
    expectClosedError(error, 'closed adopt', 'closed');
    expect(released).toEqual(['value']);
  });

  it('defer(): throws and runs the cleanup once', async () => {
    const scope = await closedScope('closed defer');
    let ran = 0;
    const error = thrownBy(() => scope.defer(() => void ran++));
    expectClosedError(error, 'closed defer', 'closed');
    expect(ran).toBe(1);
  });

  it('fork(): throws and opens no scope', async () => {
    const scope = await closedScope('closed fork');
    const before = openScopeCount();
    const error = thrownBy(() => scope.fork());
    expectClosedError(error, 'closed fork', 'closed');
    expect(openScopeCount()).toBe(before);
  });

  it('run(): throws and does not run the function', async () => {
    const scope = await closedScope('closed run');
    let ran = false;
    const error = thrownBy(() => scope.run(() => (ran = true)));
    expectClosedError(error, 'closed run', 'closed');
    expect(ran).toBe(false);
  });

  it('throws with state "closing" for every verb while the scope is closing, releasing each value once', async () => {
    const released: string[] = [];
    const errors: unknown[] = [];
    const scope = openScope({ name: 'busy' });
    scope.defer(async () => {
      const attempts: [string, () => unknown][] = [
        ['track', () => scope.track('t', { release: (v) => void released.push(v) })],
        ['use', () => scope.use({ [Symbol.dispose]: () => void released.push('u') })],
        ['adopt', () => scope.adopt('a', (v) => released.push(v))],
        ['defer', () => scope.defer(() => released.push('d'))],
        ['fork', () => scope.fork()],
        ['run', () => scope.run(() => released.push('run ran'))],
      ];
      for (const [, attempt] of attempts) errors.push(thrownBy(attempt));
    });
    await scope.close();
    expect(errors).toHaveLength(6);
    for (const error of errors) expectClosedError(error, 'busy', 'closing');
    expect(released).toEqual(['t', 'u', 'a', 'd']);
  });

  it('still throws ScopeClosedError when releasing the refused value fails, and reports the failure as a warning', async () => {
    const scope = await closedScope('closed failing');
    const { warnings, stop } = collectWarnings();
    const error = thrownBy(() =>
      scope.track('x', {
        release: () => {
          throw new Error('release failed');
        },
      }),
    );
    await flush();
    stop();
    expect(error).toBeInstanceOf(ScopeClosedError);
    const releaseWarnings = warnings.filter((w) => w.name === 'ResourceReleaseWarning');
    expect(releaseWarnings).toHaveLength(1);
    expect(releaseWarnings[0]?.message).toContain('release failed');
  });
});

describe('use(), adopt() and defer() take ownership of their argument', () => {
  it('use() disposes a Symbol.asyncDispose object with itself as `this`, and returns it', async () => {
    const scope = openScope();
    const calls: unknown[] = [];
    const resource = {
      async [Symbol.asyncDispose]() {
        calls.push(this);
      },
    };
    expect(scope.use(resource)).toBe(resource);
    expect(calls).toEqual([]);
    await scope.close();
    expect(calls).toHaveLength(1);
    expect(calls[0]).toBe(resource);
  });

  it('use() disposes a Symbol.dispose object once, and returns it', async () => {
    const scope = openScope();
    let disposed = 0;
    const resource = { [Symbol.dispose]: () => void disposed++ };
    expect(scope.use(resource)).toBe(resource);
    await scope.close();
    expect(disposed).toBe(1);
  });

  it('use() prefers Symbol.asyncDispose when an object has both, like `await using`', async () => {
    const scope = openScope();
    const log: string[] = [];
    scope.use({
      [Symbol.asyncDispose]: async () => void log.push('async'),
      [Symbol.dispose]: () => void log.push('sync'),
    });
    await scope.close();
    expect(log).toEqual(['async']);
  });

  it('use() passes null and undefined through and owns nothing for them', async () => {
    const scope = openScope();
    expect(scope.use(null)).toBeNull();
    expect(scope.use(undefined)).toBeUndefined();
    await expect(scope.close()).resolves.toBeUndefined();
  });

  it.each([
    ['a plain object', {}],
    ['a number', 42],
    ['a string', 'text'],
    ['an object whose dispose is not a function', { [Symbol.dispose]: 'nope' }],
  ])('use() rejects %s with a TypeError naming the dispose methods', async (_label, value) => {
    const scope = openScope();
    const error = thrownBy(() => scope.use(value as unknown as Disposable));
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toMatch(/scope\.use\(\)/);
    expect(String(error)).toContain('[Symbol.asyncDispose]');
    expect(String(error)).toContain('[Symbol.dispose]');
    await scope.close();
  });

  it('adopt() calls release(value) once at close and returns the value', async () => {
    const scope = openScope();
    const value = { id: 7 };
    const released: unknown[] = [];
    expect(scope.adopt(value, (v) => released.push(v))).toBe(value);
    expect(released).toEqual([]);
    await scope.close();
    expect(released).toHaveLength(1);
    expect(released[0]).toBe(value);
  });

  it('adopt() rejects a release that is not a function with a TypeError', async () => {
    const scope = openScope();
    const error = thrownBy(() => scope.adopt('v', 'close' as unknown as (v: string) => void));
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toMatch(/scope\.adopt\(\): release must be a function/);
    await scope.close();
  });

  it('defer() rejects a non-function with a TypeError and owns nothing', async () => {
    const scope = openScope();
    for (const bad of [undefined, null, 1, 'fn', {}]) {
      const error = thrownBy(() => scope.defer(bad as unknown as () => void));
      expect(error).toBeInstanceOf(TypeError);
      expect(String(error)).toMatch(/scope\.defer\(\): fn must be a function/);
    }
    await expect(scope.close()).resolves.toBeUndefined();
  });
});

describe('disposeTimeoutMs: a release that hangs does not hang close', () => {
  it('moves on after the scope option\u2019s timeout, runs the remaining releases and reports a release-timeout', async () => {
    allowLeaks(); // a hung release is the subject
    const { reports, stop } = collectReports();
    const log: string[] = [];
    const scope = openScope({ name: 'hung', disposeTimeoutMs: 30 });
    scope.defer(() => log.push('older'));
    scope.adopt('stuck socket', () => never());
    scope.defer(() => log.push('newer'));
    const started = performance.now();
    await scope.close();
    const elapsed = performance.now() - started;
    stop();
    expect(log).toEqual(['newer', 'older']);
    expect(scope.state).toBe('closed');
    expect(elapsed).toBeGreaterThanOrEqual(25);
    expect(elapsed).toBeLessThan(150);
    const timeouts = releaseTimeouts(reports);
    expect(timeouts).toHaveLength(1);
    expect(timeouts[0]?.timeoutMs).toBe(30);
    expect(timeouts[0]?.scope.name).toBe('hung');
    expect(timeouts[0]?.scope.id).toBe(scope.id);
    expect(timeouts[0]?.resource.kind).toBe('adopted value');
  });

  it('names a hung cleanup in its report: the function given to defer or adopt, the class of a disposable', async () => {
    allowLeaks();
    const { reports, stop } = collectReports();
    class StuckSocket {
      [Symbol.asyncDispose](): Promise<void> {
        return never();
      }
    }
    const scope = openScope({ name: 'hung', disposeTimeoutMs: 10 });
    scope.adopt('conn', function giveBackConn() {
      return never();
    });
    scope.use(new StuckSocket());
    scope.defer(function flushLogs() {
      return never();
    });
    scope.defer(() => never());
    await scope.close();
    stop();
    const named = releaseTimeouts(reports).map((r) => [r.resource.kind, r.resource.label]);
    expect(named).toEqual([
      ['deferred cleanup', undefined],
      ['deferred cleanup', 'flushLogs'],
      ['StuckSocket', undefined],
      ['adopted value', 'giveBackConn'],
    ]);
  });

  it('gives each release its own full timeout, and reports every one that hangs', async () => {
    allowLeaks();
    const { reports, stop } = collectReports();
    const log: string[] = [];
    const scope = openScope({ disposeTimeoutMs: 40 });
    scope.adopt('first stuck', function firstStuck() {
      return never();
    });
    // Slow but in time: each takes 60% of the timeout, so a deadline shared across releases
    // (not re-armed) would give up on the second one.
    scope.defer(async function slowTwo() {
      await sleep(24);
      log.push('slow two');
    });
    scope.defer(async function slowOne() {
      await sleep(24);
      log.push('slow one');
    });
    scope.adopt('second stuck', function secondStuck() {
      return never();
    });
    await scope.close();
    stop();
    expect(log).toEqual(['slow one', 'slow two']);
    expect(releaseTimeouts(reports).map((r) => r.resource.label)).toEqual(['secondStuck', 'firstStuck']);
  });

  it('names the hung lease and where it was acquired', async () => {
    allowLeaks();
    const { reports, stop } = collectReports();
    const scope = openScope({ disposeTimeoutMs: 20 });
    scope.track('conn', { release: () => never(), kind: 'test connection', label: 'primary' });
    await scope.close();
    stop();
    const timeouts = releaseTimeouts(reports);
    expect(timeouts).toHaveLength(1);
    expect(timeouts[0]?.resource.kind).toBe('test connection');
    expect(timeouts[0]?.resource.label).toBe('primary');
    expect(timeouts[0]?.resource.site).toMatch(/^test\/scope\.test\.ts:\d+:\d+$/);
  });

  it('uses configure({ disposeTimeoutMs }) when the scope has no option', async () => {
    allowLeaks(); // a hung release is the subject
    configure({ disposeTimeoutMs: 20 });
    const { reports, stop } = collectReports();
    const log: string[] = [];
    const scope = openScope();
    scope.defer(() => log.push('after the hung one'));
    scope.defer(() => never());
    const started = performance.now();
    await scope.close();
    const elapsed = performance.now() - started;
    stop();
    expect(log).toEqual(['after the hung one']);
    expect(elapsed).toBeLessThan(150);
    expect(releaseTimeouts(reports).map((r) => r.timeoutMs)).toEqual([20]);
  });

  it('reports each hung release separately and still finishes', async () => {
    allowLeaks();
    const { reports, stop } = collectReports();
    const scope = openScope({ disposeTimeoutMs: 15 });
    scope.defer(() => never());
    scope.defer(() => never());
    await scope.close();
    stop();
    expect(releaseTimeouts(reports)).toHaveLength(2);
  });

  it('waits forever with 0 (scope option overriding configure): a release resolving after 30 ms is awaited, not reported', async () => {
    configure({ disposeTimeoutMs: 5 });
    const { reports, stop } = collectReports();
    const log: string[] = [];
    const scope = openScope({ disposeTimeoutMs: 0 });
    scope.defer(() => log.push('older'));
    scope.defer(async () => {
      await sleep(30);
      log.push('slow release done');
    });
    const started = performance.now();
    await scope.close();
    const elapsed = performance.now() - started;
    stop();
    expect(log).toEqual(['slow release done', 'older']);
    expect(elapsed).toBeGreaterThanOrEqual(25);
    expect(releaseTimeouts(reports)).toEqual([]);
  });

  it('waits forever with configure({ disposeTimeoutMs: 0 })', async () => {
    configure({ disposeTimeoutMs: 0 });
    const { reports, stop } = collectReports();
    const log: string[] = [];
    const scope = openScope();
    scope.defer(async () => {
      await sleep(30);
      log.push('slow release done');
    });
    await scope.close();
    stop();
    expect(log).toEqual(['slow release done']);
    expect(releaseTimeouts(reports)).toEqual([]);
  });

  it('still collects the error of a slow release that rejects within the timeout', async () => {
    const failure = new Error('late failure');
    const scope = openScope({ disposeTimeoutMs: 100 });
    scope.defer(async () => {
      await sleep(5);
      throw failure;
    });
    expect(await rejectionOf(scope.close())).toBe(failure);
  });
});

describe('signal', () => {
  it('is not aborted while the scope is open', () => {
    const scope = openScope();
    expect(scope.signal.aborted).toBe(false);
    scope.defer(() => {});
    expect(scope.signal.aborted).toBe(false);
    void scope.close();
  });

  it('aborts with a ScopeClosedError when the scope closes (read before close)', async () => {
    const scope = openScope();
    const signal = scope.signal;
    let abortedDuringRelease: boolean | undefined;
    scope.defer(() => (abortedDuringRelease = signal.aborted));
    await scope.close();
    expect(abortedDuringRelease).toBe(true);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(ScopeClosedError);
  });

  it('is already aborted when first read after close', async () => {
    const scope = openScope();
    await scope.close();
    expect(scope.signal.aborted).toBe(true);
    expect(scope.signal.reason).toBeInstanceOf(ScopeClosedError);
  });

  it('aborts with the given reason on cancel(), without closing the scope', async () => {
    const reason = new Error('client went away');
    const scope = openScope();
    const signal = scope.signal;
    scope.cancel(reason);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe(reason);
    expect(scope.state).toBe('open');
    await scope.close();
    expect(scope.signal.reason).toBe(reason);
  });

  it('aborts with an AbortError DOMException on cancel() without a reason', async () => {
    const scope = openScope({ name: 'cancelled' });
    scope.cancel();
    const reason: unknown = scope.signal.reason;
    expect(reason).toBeInstanceOf(DOMException);
    if (reason instanceof DOMException) {
      expect(reason.name).toBe('AbortError');
      expect(reason.message).toContain('"cancelled"');
    }
    await scope.close();
  });

  it('keeps the first reason when cancelled twice', async () => {
    const first = new Error('first');
    const scope = openScope();
    scope.cancel(first);
    scope.cancel(new Error('second'));
    expect(scope.signal.reason).toBe(first);
    await scope.close();
  });

  it('aborts a child\u2019s signal with the parent\u2019s reason when the parent is cancelled', async () => {
    const reason = new Error('parent cancelled');
    const parent = openScope();
    const child = parent.fork();
    const early = child.signal;
    const grandchild = child.fork();
    parent.cancel(reason);
    expect(early.aborted).toBe(true);
    expect(early.reason).toBe(reason);
    expect(grandchild.signal.aborted).toBe(true);
    expect(grandchild.signal.reason).toBe(reason);
    await parent.close();
  });

  it('does not abort the parent\u2019s signal when a child is cancelled or closed', async () => {
    const parent = openScope();
    const child = parent.fork();
    child.cancel(new Error('child only'));
    await child.close();
    expect(parent.signal.aborted).toBe(false);
    await parent.close();
  });
});

describe('await using', () => {
  it('closes a scope from openScope() at the end of the block', async () => {
    const log: string[] = [];
    let seen: Scope | undefined;
    {
      await using scope = openScope();
      seen = scope;
      scope.defer(() => log.push('released'));
      expect(scope.state).toBe('open');
      expect(log).toEqual([]);
    }
    expect(log).toEqual(['released']);
    expect(seen.state).toBe('closed');
  });

  it('closes the scope when the block throws, and the block\u2019s error propagates', async () => {
    const log: string[] = [];
    const failure = new Error('block failed');
    const run = async () => {
      await using scope = openScope();
      scope.defer(async () => void log.push('released'));
      throw failure;
    };
    expect(await rejectionOf(run())).toBe(failure);
    expect(log).toEqual(['released']);
  });
});
