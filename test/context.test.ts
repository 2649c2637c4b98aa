import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import {
  currentScope,
  getReleaseErrors,
  flattenSuppressed,
  openScope,
  ScopeClosedError,
  ScopeTimeoutError,
  track,
  withScope,
  type Scope,
  type ScopeOptions,
} from '../src/index.js';
import { collectReports, collectWarnings, flush, openScopeCount, sleep, useCleanCustodian, never, gate, rejectionOf } from './helpers.js';

useCleanCustodian({ leaks: 'reclaim' });

/** Settles `promise` or gives up after `ms`: 'hung' means it was still pending. */
async function within(promise: Promise<unknown>, ms: number): Promise<{ status: 'resolved' | 'rejected' | 'hung'; value?: unknown }> {
  const timeout = new Promise<{ status: 'hung' }>((resolve) => setTimeout(() => resolve({ status: 'hung' }), ms));
  return Promise.race([
    promise.then(
      (value) => ({ status: 'resolved' as const, value }),
      (value: unknown) => ({ status: 'rejected' as const, value }),
    ),
    timeout,
  ]);
}

const activeTimeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('withScope runs fn in a new scope and returns its result', () => {
  it('resolves with the result of a synchronous fn', async () => {
    const result = withScope(() => 42);
    expect(result).toBeInstanceOf(Promise);
    await expect(result).resolves.toBe(42);
  });

  it('resolves with the result of an async fn', async () => {
    const value = { rows: [1, 2] };
    await expect(
      withScope(async () => {
        await sleep(1);
        return value;
      }),
    ).resolves.toBe(value);
  });

  it('passes the scope to fn and makes it currentScope() inside, across awaits', async () => {
    const seen: (Scope | undefined)[] = [];
    let given: Scope | undefined;
    await withScope(async (scope) => {
      given = scope;
      seen.push(currentScope());
      await sleep(1);
      seen.push(currentScope());
    });
    expect(given).toBeDefined();
    expect(seen).toEqual([given, given]);
    expect(seen[0]).toBe(given);
    expect(seen[1]).toBe(given);
  });

  it('has no current scope outside', async () => {
    expect(currentScope()).toBeUndefined();
    await withScope(() => {});
    expect(currentScope()).toBeUndefined();
  });

  it('opens a child of the current scope when nested, and restores the outer scope after it', async () => {
    await withScope(async (outer) => {
      const inner = await withScope(async (scope) => {
        expect(currentScope()).toBe(scope);
        return scope;
      });
      expect(inner).not.toBe(outer);
      expect(inner.parent).toBe(outer);
      expect(inner.state).toBe('closed');
      expect(currentScope()).toBe(outer);
      expect(outer.parent).toBeUndefined();
    });
  });

  it('closes the scope once fn settles, releasing what track() acquired in it', async () => {
    allowLeaks(); // the scope reclaims the lease
    const released: string[] = [];
    let scope: Scope | undefined;
    await withScope(async (s) => {
      scope = s;
      track('conn', { release: (v) => void released.push(v) });
      await sleep(1);
      expect(released).toEqual([]);
    });
    expect(released).toEqual(['conn']);
    expect(scope?.state).toBe('closed');
  });

  it('rejects (does not throw) with a TypeError when fn is not a function', async () => {
    const before = openScopeCount();
    let result: Promise<unknown> | undefined;
    expect(() => {
      result = withScope('run me' as unknown as () => void);
    }).not.toThrow();
    const error = await rejectionOf(result ?? Promise.resolve());
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toMatch(/withScope\(\): fn must be a function/);
    expect(openScopeCount()).toBe(before);
  });
});

describe('openScope and scope.run', () => {
  it('run() makes the scope current for fn and returns fn\u2019s result; the scope stays open', async () => {
    const scope = openScope();
    expect(currentScope()).toBeUndefined();
    const result = scope.run((s) => {
      expect(s).toBe(scope);
      return currentScope();
    });
    expect(result).toBe(scope);
    expect(currentScope()).toBeUndefined();
    expect(scope.state).toBe('open');
    await scope.close();
  });

  it('run() keeps the scope current across awaits in an async fn', async () => {
    const scope = openScope();
    const seen = await scope.run(async () => {
      await sleep(1);
      return currentScope();
    });
    expect(seen).toBe(scope);
    await scope.close();
  });

  it('openScope() inside run() opens a child; outside it opens a root', async () => {
    const root = openScope();
    expect(root.parent).toBeUndefined();
    const child = root.run(() => openScope());
    expect(child.parent).toBe(root);
    await root.close();
    expect(child.state).toBe('closed');
  });

  it('run() rejects a non-function with a TypeError', async () => {
    const scope = openScope();
    expect(() => scope.run(null as unknown as () => void)).toThrow(/scope\.run\(\): fn must be a function/);
    await scope.close();
  });
});

describe('errors: the body\u2019s error stays primary', () => {
  it('rethrows the async body\u2019s error as is when releases also fail, and attaches the release errors', async () => {
    const bodyError = new Error('body failed');
    const releasedFirst = new Error('released first');
    const releasedSecond = new Error('released second');
    const { warnings, stop } = collectWarnings();
    const error = await rejectionOf(
      withScope(
        async (scope) => {
          scope.defer(() => {
            throw releasedSecond;
          });
          scope.defer(() => Promise.reject(releasedFirst));
          await sleep(1);
          throw bodyError;
        },
        { name: 'failing task' },
      ),
    );
    await flush();
    stop();
    expect(error).toBe(bodyError);
    expect(getReleaseErrors(error)).toEqual([releasedFirst, releasedSecond]);
    const releaseWarnings = warnings.filter((w) => w.name === 'ResourceReleaseWarning');
    expect(releaseWarnings).toHaveLength(1);
    expect(releaseWarnings[0]?.code).toBe('CUSTODIAN_RELEASE_FAILED');
    expect(releaseWarnings[0]?.message).toContain('"failing task"');
    expect(releaseWarnings[0]?.detail).toContain('released first');
    expect(releaseWarnings[0]?.detail).toContain('released second');
  });

  it('rethrows a synchronous body\u2019s error as is when a release also fails', async () => {
    const bodyError = new TypeError('sync body failed');
    const releaseError = new Error('release failed');
    const error = await rejectionOf(
      withScope((scope) => {
        scope.defer(() => {
          throw releaseError;
        });
        throw bodyError;
      }),
    );
    await flush();
    expect(error).toBe(bodyError);
    expect(getReleaseErrors(error)).toEqual([releaseError]);
  });

  it('rethrows the body\u2019s error with no release errors attached when every release succeeds', async () => {
    const bodyError = new Error('only the body');
    const released: string[] = [];
    const { warnings, stop } = collectWarnings();
    const error = await rejectionOf(
      withScope(async (scope) => {
        scope.defer(() => released.push('deferred'));
        throw bodyError;
      }),
    );
    await flush();
    stop();
    expect(error).toBe(bodyError);
    expect(released).toEqual(['deferred']);
    expect(getReleaseErrors(error)).toEqual([]);
    expect(warnings.filter((w) => w.name === 'ResourceReleaseWarning')).toEqual([]);
  });

  it('rejects with the release error as is when only a release fails', async () => {
    const releaseError = new Error('release failed');
    const error = await rejectionOf(
      withScope(async (scope) => {
        scope.defer(() => Promise.reject(releaseError));
        return 'fine';
      }),
    );
    expect(error).toBe(releaseError);
  });

  it('rejects with a SuppressedError chain when several releases fail and the body succeeded', async () => {
    const releasedFirst = new Error('released first');
    const releasedSecond = new Error('released second');
    const error = await rejectionOf(
      withScope((scope) => {
        scope.defer(() => {
          throw releasedSecond;
        });
        scope.defer(() => {
          throw releasedFirst;
        });
      }),
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('SuppressedError');
    expect(flattenSuppressed(error)).toEqual([releasedFirst, releasedSecond]);
  });
});

describe('timeout', () => {
  it('rejects with a ScopeTimeoutError even when the body ignores the signal and never settles', async () => {
    const started = performance.now();
    let scope: Scope | undefined;
    const error = await rejectionOf(
      withScope(
        async (s) => {
          scope = s;
          await never();
        },
        { name: 'slow job', timeout: 30 },
      ),
    );
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(ScopeTimeoutError);
    if (!(error instanceof ScopeTimeoutError)) return;
    expect(error.name).toBe('TimeoutError');
    expect(error.code).toBe('ERR_CUSTODIAN_SCOPE_TIMEOUT');
    expect(error.timeoutMs).toBe(30);
    expect(error.message).toContain('"slow job"');
    expect(error.message).toContain('30 ms');
    expect(elapsed).toBeGreaterThanOrEqual(25);
    expect(elapsed).toBeLessThan(150);
    expect(scope?.state).toBe('closed');
    expect(scope?.signal.aborted).toBe(true);
    expect(scope?.signal.reason).toBe(error);
  });

  it('releases the scope\u2019s resources and destroys (not releases) a lease the running body still held', async () => {
    const log: string[] = [];
    const destroyReasons: unknown[] = [];
    const error = await rejectionOf(
      withScope(
        async (scope) => {
          scope.defer(() => log.push('deferred released'));
          scope.track('conn', {
            release: () => void log.push('conn released'),
            destroy: (v, reason) => {
              log.push(`${v} destroyed`);
              destroyReasons.push(reason);
            },
          });
          await never();
        },
        { timeout: 20 },
      ),
    );
    expect(error).toBeInstanceOf(ScopeTimeoutError);
    expect(log).toEqual(['conn destroyed', 'deferred released']);
    expect(destroyReasons).toHaveLength(1);
    expect(destroyReasons[0]).toBe(error);
  });

  it('makes the body\u2019s later track() throw ScopeClosedError and release the value at once', async () => {
    const hold = gate();
    const lateReleased: string[] = [];
    let lateError: unknown;
    let bodyFinished = false;
    const task = withScope(
      async (scope) => {
        await hold.promise; // ignores scope.signal
        try {
          scope.track('late', { release: (v) => void lateReleased.push(v) });
        } catch (error) {
          lateError = error;
        }
        bodyFinished = true;
      },
      { timeout: 20 },
    );
    expect(await rejectionOf(task)).toBeInstanceOf(ScopeTimeoutError);
    expect(bodyFinished).toBe(false);
    hold.open();
    await flush();
    expect(bodyFinished).toBe(true);
    expect(lateError).toBeInstanceOf(ScopeClosedError);
    expect((lateError as ScopeClosedError).code).toBe('ERR_CUSTODIAN_SCOPE_CLOSED');
    expect(lateReleased).toEqual(['late']);
  });

  it('reports the destroyed lease as unreleased, naming its line', async () => {
    const { reports, stop } = collectReports();
    await rejectionOf(
      withScope(
        async (scope) => {
          scope.track('conn', { release: () => {}, kind: 'test connection' });
          await never();
        },
        { timeout: 20 },
      ),
    );
    stop();
    const leaks = reports.filter((r) => r.type === 'unreleased');
    expect(leaks).toHaveLength(1);
    expect(leaks[0]?.message).toContain('destroyed');
    expect(leaks[0]?.message).toMatch(/test\/context\.test\.ts:\d+:\d+/);
  });

  it('resolves normally when the body finishes in time', async () => {
    await expect(withScope(async () => 'done', { timeout: 1000 })).resolves.toBe('done');
  });

  it('clears its timer when the scope closes (no pending Timeout left, the run is fast)', async () => {
    const before = activeTimeouts();
    const started = performance.now();
    await withScope(
      async () => {
        expect(activeTimeouts()).toBe(before + 1);
        await Promise.resolve();
        return 1;
      },
      { timeout: 60_000 },
    );
    await withScope(() => 2, { timeout: 60_000 });
    await rejectionOf(withScope(async () => Promise.reject(new Error('x')), { timeout: 60_000 }));
    expect(activeTimeouts()).toBe(before);
    expect(performance.now() - started).toBeLessThan(200);
  });

  it('clears the timer of an openScope({ timeout }) closed early', async () => {
    const before = activeTimeouts();
    const scope = openScope({ timeout: 60_000 });
    expect(activeTimeouts()).toBe(before + 1);
    await scope.close();
    expect(activeTimeouts()).toBe(before);
  });
});

describe('scope.cancel() inside withScope', () => {
  // By design (docs/decisions.md): a scope with no timeout or signal, own or inherited, takes the
  // fast path, which cannot stop waiting for a body that ignores its signal. cancel() still aborts
  // the signal, and the task's answer is the cancellation reason once the body settles.
  it('aborts the signal and rejects with the reason once the body settles, when the scope has no timeout or signal', async () => {
    const reason = new Error('stop now');
    let aborted = false;
    const outcome = await within(
      withScope(async (scope) => {
        scope.cancel(reason);
        aborted = scope.signal.aborted;
        await sleep(5);
        return 'finished anyway';
      }),
      200,
    );
    expect(aborted).toBe(true);
    expect(outcome).toEqual({ status: 'rejected', value: reason });
  });

  it('stops waiting and rejects with the reason when the scope has a timeout', async () => {
    const reason = new Error('stop now');
    const outcome = await within(
      withScope(
        async (scope) => {
          scope.cancel(reason);
          await never();
        },
        { timeout: 60_000 },
      ),
      100,
    );
    expect(outcome).toEqual({ status: 'rejected', value: reason });
  });
});

describe('an un-awaited nested withScope when its parent closes', () => {
  it('rejects the child task with the ScopeClosedError it was cancelled with, once its body settles', async () => {
    const hold = gate();
    let innerTask: Promise<unknown> | undefined;
    await withScope(async () => {
      innerTask = withScope(async () => {
        await hold.promise;
        return 'finished late';
      });
      innerTask.catch(() => {});
    });
    hold.open();
    const outcome = await within(innerTask ?? Promise.resolve(), 200);
    expect(outcome.status).toBe('rejected');
    expect(outcome.value).toBeInstanceOf(ScopeClosedError);
  });

  it('rejects the child task with a ScopeClosedError when the child has a timeout', async () => {
    const hold = gate();
    let innerTask: Promise<unknown> | undefined;
    await withScope(async () => {
      innerTask = withScope(
        async () => {
          await hold.promise;
          return 'finished late';
        },
        { timeout: 60_000 },
      );
      innerTask.catch(() => {});
    });
    const outcome = await within(innerTask ?? Promise.resolve(), 50);
    hold.open();
    expect(outcome.status).toBe('rejected');
    expect(outcome.value).toBeInstanceOf(ScopeClosedError);
  });
});

describe('outer signal', () => {
  it('cancels the scope with signal.reason when it aborts, rejects with that reason and releases', async () => {
    const controller = new AbortController();
    const reason = new Error('client disconnected');
    const log: string[] = [];
    let scope: Scope | undefined;
    const task = withScope(
      async (s) => {
        scope = s;
        s.defer(() => log.push('released'));
        await never();
      },
      { signal: controller.signal },
    );
    await sleep(5);
    expect(log).toEqual([]);
    controller.abort(reason);
    expect(await rejectionOf(task)).toBe(reason);
    expect(log).toEqual(['released']);
    expect(scope?.state).toBe('closed');
    expect(scope?.signal.reason).toBe(reason);
  });

  it('aborts the scope signal (and a nested scope\u2019s) with signal.reason', async () => {
    const controller = new AbortController();
    const reason = new Error('shutdown');
    const signals: AbortSignal[] = [];
    const task = withScope(
      async (outer) => {
        signals.push(outer.signal);
        await withScope(async (inner) => {
          signals.push(inner.signal);
          await never();
        });
      },
      { signal: controller.signal },
    );
    await sleep(5);
    controller.abort(reason);
    expect(await rejectionOf(task)).toBe(reason);
    expect(signals.map((s) => [s.aborted, s.reason === reason])).toEqual([
      [true, true],
      [true, true],
    ]);
  });

  it('rejects with the reason of an already-aborted signal without running fn or leaving a scope open', async () => {
    const reason = new Error('aborted before start');
    const before = openScopeCount();
    let ran = false;
    const error = await rejectionOf(
      withScope(
        () => {
          ran = true;
        },
        { signal: AbortSignal.abort(reason) },
      ),
    );
    expect(error).toBe(reason);
    expect(ran).toBe(false);
    expect(openScopeCount()).toBe(before);
  });

  it('removes its listener from the outer signal after close, so 1000 runs leave none behind', async () => {
    const controller = new AbortController();
    const { warnings, stop } = collectWarnings();
    let during = -1;
    for (let i = 0; i < 1000; i++) {
      await withScope(
        async () => {
          if (i === 500) during = getEventListeners(controller.signal, 'abort').length;
          await Promise.resolve();
        },
        { signal: controller.signal },
      );
    }
    await flush();
    stop();
    expect(during).toBe(1);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('removes its listener after sync bodies, failing bodies and timeouts too', async () => {
    const controller = new AbortController();
    const { signal } = controller;
    await withScope(() => 1, { signal });
    await rejectionOf(withScope(() => Promise.reject(new Error('failed')), { signal }));
    await rejectionOf(withScope(() => never(), { signal, timeout: 10 }));
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('adds one listener to a shared signal however many tasks watch it, and cancels them all', async () => {
    const controller = new AbortController();
    const { signal } = controller;
    const warnings = collectWarnings();
    const concurrent = Array.from({ length: 20 }, () => withScope(() => sleep(1), { signal }));
    expect(getEventListeners(signal, 'abort')).toHaveLength(1); // not 20: no MaxListenersExceededWarning
    await Promise.all(concurrent);
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    const reason = new Error('shutdown');
    const running = Array.from({ length: 3 }, () => withScope(() => never(), { signal }).catch((error: unknown) => error));
    controller.abort(reason);
    expect(await Promise.all(running)).toEqual([reason, reason, reason]);
    await flush();
    warnings.stop();
    expect(warnings.warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
  });
});

describe('options are validated before anything opens', () => {
  const cases: [string, unknown, string][] = [
    ['an unknown option', { timout: 100 }, "unknown option 'timout'"],
    ['timeout 0', { timeout: 0 }, "option 'timeout'"],
    ['timeout -1', { timeout: -1 }, "option 'timeout'"],
    ['timeout 1.5', { timeout: 1.5 }, "option 'timeout'"],
    ["timeout 'x'", { timeout: 'x' }, "option 'timeout'"],
    ["leaks 'loud'", { leaks: 'loud' }, "option 'leaks'"],
    ['a non-string name', { name: 42 }, "option 'name'"],
    ['a non-signal signal', { signal: { aborted: false } }, "option 'signal'"],
    ['a negative disposeTimeoutMs', { disposeTimeoutMs: -1 }, "option 'disposeTimeoutMs'"],
    ['non-object options', 'fast', 'options must be an object'],
  ];

  it.each(cases)('withScope() with %s rejects with a TypeError naming it, without running fn', async (_name, options, text) => {
    const before = openScopeCount();
    let ran = false;
    const error = await rejectionOf(
      withScope(() => {
        ran = true;
      }, options as ScopeOptions),
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toContain('withScope()');
    expect(String(error)).toContain(text);
    expect(ran).toBe(false);
    expect(openScopeCount()).toBe(before);
  });

  it.each(cases)('openScope() with %s throws a TypeError naming it, opening nothing', (_name, options, text) => {
    const before = openScopeCount();
    expect(() => openScope(options as ScopeOptions)).toThrow(TypeError);
    expect(() => openScope(options as ScopeOptions)).toThrow(text);
    expect(openScopeCount()).toBe(before);
  });

  it('treats undefined option values as absent', async () => {
    await expect(withScope(() => 'ok', { name: undefined, timeout: undefined, signal: undefined })).resolves.toBe('ok');
  });
});
