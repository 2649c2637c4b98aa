import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import { inspect, LeaseReleasedError, openScope, track, withScope, type Lease, type LeakReport, type TrackOptions } from '../src/index.js';
import { collectReports, collectWarnings, flush, useCleanCustodian, thrownBy } from './helpers.js';

useCleanCustodian({ leaks: 'reclaim' });

/** The line of the caller of this function, as the stack shows it. */
function callerLine(): number {
  const frame = (new Error().stack ?? '').split('\n')[2] ?? '';
  const match = /:(\d+):\d+\)?$/.exec(frame);
  if (match === null) throw new Error(`cannot parse stack frame ${frame}`);
  return Number(match[1]);
}

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */

/** A release/destroy pair that records calls. */
function recorder<T>() {
  const calls: string[] = [];
  const reasons: unknown[] = [];
  const options: TrackOptions<T> = {
    release: (value) => void calls.push(`release ${String(value)}`),
    destroy: (value, reason) => {
      calls.push(`destroy ${String(value)}`);
      reasons.push(reason);
    },
  };
  return { calls, reasons, options };
}

const unreleased = (reports: readonly LeakReport[]) => reports.filter((r) => r.type === 'unreleased');

describe('release() is idempotent', () => {
  it('calls the release function once and returns the same promise on the second call', async () => {
    const scope = openScope();
    const { calls, options } = recorder<string>();
    const lease = scope.track('conn', options);
    const first = lease.release();
    const second = lease.release();
    expect(second).toBe(first);
    await first;
    expect(lease.release()).toBe(first);
    expect(calls).toEqual(['release conn']);
    await scope.close();
    expect(calls).toEqual(['release conn']);
  });

  it('returns the same promise for an async release, resolved only when the release finished', async () => {
    const scope = openScope();
    const log: string[] = [];
    const lease = scope.track('conn', {
      release: async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        log.push('released');
      },
    });
    const first = lease.release();
    expect(lease.release()).toBe(first);
    expect(log).toEqual([]);
    await first;
    expect(log).toEqual(['released']);
    await scope.close();
    expect(log).toEqual(['released']);
  });

  it('rejects with a failing release\u2019s error, and the second call returns that same rejected promise', async () => {
    const failure = new Error('cannot close');
    let calls = 0;
    const scope = openScope();
    const lease = scope.track('conn', {
      release: () => {
        calls++;
        throw failure;
      },
    });
    const first = lease.release();
    const second = lease.release();
    expect(second).toBe(first);
    await expect(first).rejects.toBe(failure);
    expect(calls).toBe(1);
    expect(lease.released).toBe(true);
    await expect(scope.close()).resolves.toBeUndefined();
  });
});

describe('release() while the scope is reclaiming the lease', () => {
  it('resolves only once the in-flight release has finished', async () => {
    allowLeaks(); // the scope reclaims the lease
    const log: string[] = [];
    const scope = openScope();
    const lease = scope.track('conn', {
      release: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        log.push('released');
      },
    });
    const closing = scope.close();
    await lease.release();
    log.push('lease.release() resolved');
    await closing;
    expect(log).toEqual(['released', 'lease.release() resolved']);
  });

  it('does not call the release function a second time', async () => {
    allowLeaks(); // the scope reclaims the lease
    let calls = 0;
    const scope = openScope();
    const lease = scope.track('conn', { release: async () => void calls++ });
    const closing = scope.close();
    await lease.release();
    await closing;
    expect(calls).toBe(1);
  });
});

describe('destroy(reason)', () => {
  it('calls the destroy option with the value and the reason, not release', async () => {
    const scope = openScope();
    const { calls, reasons, options } = recorder<string>();
    const lease = scope.track('conn', options);
    const reason = new Error('protocol error');
    await lease.destroy(reason);
    expect(calls).toEqual(['destroy conn']);
    expect(reasons).toEqual([reason]);
    expect(reasons[0]).toBe(reason);
    expect(lease.released).toBe(true);
    await scope.close();
    expect(calls).toEqual(['destroy conn']);
  });

  it('falls back to release(value) when there is no destroy option', async () => {
    const scope = openScope();
    const released: unknown[] = [];
    const lease = scope.track('conn', { release: (v, ...rest: unknown[]) => void released.push([v, ...rest]) });
    await lease.destroy(new Error('broken'));
    expect(released).toEqual([['conn']]);
    await scope.close();
    expect(released).toHaveLength(1);
  });

  it('is a no-op after release', async () => {
    const scope = openScope();
    const { calls, options } = recorder<string>();
    const lease = scope.track('conn', options);
    const released = lease.release();
    expect(lease.destroy(new Error('late'))).toBe(released);
    await released;
    expect(calls).toEqual(['release conn']);
    await scope.close();
  });

  it('makes a later release() a no-op', async () => {
    const scope = openScope();
    const { calls, options } = recorder<string>();
    const lease = scope.track('conn', options);
    const destroyed = lease.destroy('bad state');
    expect(lease.release()).toBe(destroyed);
    await destroyed;
    expect(lease.destroy('again')).toBe(destroyed);
    expect(calls).toEqual(['destroy conn']);
    await scope.close();
    expect(calls).toEqual(['destroy conn']);
  });
});

describe('lease properties', () => {
  it('reports released false while held and true after release', async () => {
    const scope = openScope();
    const lease = scope.track(1, { release: () => {} });
    expect(lease.released).toBe(false);
    await lease.release();
    expect(lease.released).toBe(true);
    await scope.close();
  });

  it('defaults kind to "resource" and label to undefined', async () => {
    const scope = openScope();
    const lease = scope.track(1, { release: () => {} });
    expect(lease.kind).toBe('resource');
    expect(lease.label).toBeUndefined();
    await lease.release();
    await scope.close();
  });

  it('keeps the kind and label given to track', async () => {
    const scope = openScope();
    const lease = scope.track(1, { release: () => {}, kind: 'mysql connection', label: 'primary' });
    expect(lease.kind).toBe('mysql connection');
    expect(lease.label).toBe('primary');
    expect(Object.prototype.toString.call(lease)).toBe('[object Lease mysql connection (primary)]');
    await lease.release();
    await scope.close();
  });

  it('records the site as the test file line that called scope.track()', async () => {
    const scope = openScope();
    const [lease, line] = [scope.track(1, { release: () => {} }), callerLine()];
    expect(lease.site).toMatch(/^test\/lease\.test\.ts:\d+:\d+$/);
    expect(lease.site?.split(':')[1]).toBe(String(line));
    await lease.release();
    await scope.close();
  });

  it('records the site as the test file line that called track() inside a scope', async () => {
    await withScope(async () => {
      const [lease, line] = [track(1, { release: () => {} }), callerLine()];
      expect(lease.site).toBe(`test/lease.test.ts:${line}:${lease.site?.split(':')[2] ?? ''}`);
      await lease.release();
    });
  });

  it('records the site of an unscoped track()', async () => {
    const [lease, line] = [track(1, { release: () => {} }), callerLine()];
    expect(lease.site?.startsWith(`test/lease.test.ts:${line}:`)).toBe(true);
    await lease.release();
  });

  it('sets acquiredAt to the wall-clock time of acquisition', async () => {
    const scope = openScope();
    const before = Date.now();
    const lease = scope.track(1, { release: () => {} });
    const after = Date.now();
    expect(lease.acquiredAt).toBeGreaterThanOrEqual(before - 50);
    expect(lease.acquiredAt).toBeLessThanOrEqual(after + 50);
    await lease.release();
    await scope.close();
  });
});

describe('value', () => {
  it('is the tracked value while held', async () => {
    const scope = openScope();
    const resource = { id: 1 };
    const lease = scope.track(resource, { release: () => {} });
    expect(lease.value).toBe(resource);
    await lease.release();
    await scope.close();
  });

  it('throws a LeaseReleasedError after release', async () => {
    const scope = openScope();
    const lease = scope.track('conn', { release: () => {}, kind: 'test connection' });
    await lease.release();
    const error = thrownBy(() => lease.value);
    expect(error).toBeInstanceOf(LeaseReleasedError);
    if (!(error instanceof LeaseReleasedError)) return;
    expect(error.name).toBe('LeaseReleasedError');
    expect(error.code).toBe('ERR_CUSTODIAN_LEASE_RELEASED');
    // The acquiring site is not kept after release (V8 would keep the acquiring frames' objects).
    expect(error.message).toBe('test connection was already released; use its value only while you hold the lease');
    await scope.close();
  });

  it('says when the lease outlived its task: it was reclaimed by its scope, not released by the code', async () => {
    allowLeaks();
    let kept: Lease<string> | undefined;
    await withScope(
      (scope) => {
        kept = scope.track('conn', { release: () => {}, kind: 'test connection' }); // site:escaped
      },
      { name: 'GET /escape', leaks: 'reclaim' },
    );
    const error = thrownBy(() => kept?.value);
    expect(error).toBeInstanceOf(LeaseReleasedError);
    expect((error as Error).message).toMatch(
      /^test connection acquired at test\/lease\.test\.ts:\d+:\d+ was reclaimed when scope "GET \/escape" \(#\d+\) closed: the lease outlived its task; use its value only while you hold the lease$/,
    );
  });

  it('throws a LeaseReleasedError after destroy and after the scope reclaimed the lease', async () => {
    allowLeaks();
    const scope = openScope();
    const destroyed = scope.track('a', { release: () => {} });
    const reclaimed = scope.track('b', { release: () => {} });
    await destroyed.destroy();
    expect(() => destroyed.value).toThrow(LeaseReleasedError);
    await scope.close();
    expect(reclaimed.released).toBe(true);
    expect(() => reclaimed.value).toThrow(LeaseReleasedError);
  });
});

describe('await using and using', () => {
  it('releases an `await using` lease at the end of the block, once', async () => {
    const scope = openScope();
    const log: string[] = [];
    {
      await using lease = scope.track('conn', {
        release: async (v) => {
          await new Promise((resolve) => setTimeout(resolve, 1));
          log.push(`released ${v}`);
        },
      });
      expect(lease.value).toBe('conn');
      expect(log).toEqual([]);
    }
    expect(log).toEqual(['released conn']);
    await scope.close();
    expect(log).toEqual(['released conn']);
  });

  it('releases an unscoped `await using` lease from track() at the end of the block', async () => {
    const before = inspect().leases.unscoped;
    const log: string[] = [];
    {
      await using lease = track('conn', { release: async (v) => void log.push(v) });
      expect(inspect().leases.unscoped).toBe(before + 1);
      expect(lease.released).toBe(false);
    }
    expect(log).toEqual(['conn']);
    expect(inspect().leases.unscoped).toBe(before);
  });

  it('releases a `using` lease synchronously at the end of the block', async () => {
    const scope = openScope();
    const log: string[] = [];
    const block = () => {
      using lease = scope.track('conn', { release: (v) => void log.push(v) });
      log.push(`using ${lease.value}`);
    };
    block();
    log.push('after block');
    expect(log).toEqual(['using conn', 'conn', 'after block']);
    await scope.close();
    expect(log).toEqual(['using conn', 'conn', 'after block']);
  });

  it('throws a synchronous release error from the end of a `using` block', async () => {
    const scope = openScope();
    const failure = new Error('sync release failed');
    const block = () => {
      using _lease = scope.track('conn', {
        release: () => {
          throw failure;
        },
      });
    };
    expect(thrownBy(block)).toBe(failure);
    await scope.close();
  });

  it('reports a ResourceReleaseWarning when `using` disposes an async release that rejects', async () => {
    const scope = openScope();
    const { warnings, stop } = collectWarnings();
    const block = () => {
      using _lease = scope.track('conn', {
        release: async () => {
          throw new Error('async release failed');
        },
        kind: 'test connection',
      });
    };
    expect(block).not.toThrow();
    await flush();
    await flush();
    stop();
    const releaseWarnings = warnings.filter((w) => w.name === 'ResourceReleaseWarning');
    expect(releaseWarnings).toHaveLength(1);
    expect(releaseWarnings[0]?.code).toBe('CUSTODIAN_RELEASE_FAILED');
    expect(releaseWarnings[0]?.message).toContain('async release failed');
    expect(releaseWarnings[0]?.message).toContain('test connection');
    await scope.close();
  });
});

describe('a released lease is no longer held by its scope', () => {
  it('is not released again when the scope closes, and no leak is reported', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope();
    let calls = 0;
    const lease = scope.track('conn', { release: () => void calls++ });
    expect(inspect().leases.outstanding).toBeGreaterThanOrEqual(1);
    const outstanding = inspect().leases.outstanding;
    await lease.release();
    expect(inspect().leases.outstanding).toBe(outstanding - 1);
    await scope.close();
    stop();
    expect(calls).toBe(1);
    expect(unreleased(reports)).toEqual([]);
  });

  it('is reclaimed and reported when it was not released (the contrast)', async () => {
    allowLeaks();
    const { reports, stop } = collectReports();
    const scope = openScope({ name: 'forgetful' });
    let calls = 0;
    scope.track('conn', { release: () => void calls++, kind: 'test connection' });
    const released = scope.track('other', { release: () => {} });
    await released.release();
    await scope.close();
    stop();
    expect(calls).toBe(1);
    const leaks = unreleased(reports);
    expect(leaks).toHaveLength(1);
    const [leak] = leaks;
    if (leak?.type !== 'unreleased') throw new Error('expected an unreleased report');
    expect(leak.scope.name).toBe('forgetful');
    expect(leak.resources.map((r) => r.kind)).toEqual(['test connection']);
  });
});

describe('track() validates its options', () => {
  const release = () => {};
  const cases: [string, unknown, RegExp][] = [
    ['no options', undefined, /options must be an object/],
    ['null options', null, /options must be an object/],
    ['missing release', {}, /option 'release' must be a function/],
    ['non-function release', { release: 'close' }, /option 'release' must be a function/],
    ['non-function destroy', { release, destroy: 'kill' }, /option 'destroy' must be a function/],
    ['non-string kind', { release, kind: 42 }, /option 'kind' must be a string/],
    ['non-string label', { release, label: { name: 'x' } }, /option 'label' must be a string/],
  ];

  it.each(cases)('scope.track() with %s throws a TypeError naming it and leaks nothing', async (_name, options, message) => {
    const { reports, stop } = collectReports();
    const scope = openScope();
    const before = inspect().leases.outstanding;
    const error = thrownBy(() => scope.track('value', options as TrackOptions<string>));
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toMatch(/^TypeError: scope\.track\(\): /);
    expect(String(error)).toMatch(message);
    expect(inspect().leases.outstanding).toBe(before);
    await scope.close();
    stop();
    expect(reports).toEqual([]);
  });

  it.each(cases)('unscoped track() with %s throws a TypeError naming it and leaks nothing', (_name, options, message) => {
    const before = inspect().leases.unscoped;
    const error = thrownBy(() => track('value', options as TrackOptions<string>));
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toMatch(/^TypeError: track\(\): /);
    expect(String(error)).toMatch(message);
    expect(inspect().leases.unscoped).toBe(before);
  });

  it('accepts undefined destroy, kind and label', async () => {
    const scope = openScope();
    const lease = scope.track(1, { release, destroy: undefined, kind: undefined, label: undefined });
    expect(lease.kind).toBe('resource');
    await lease.release();
    await scope.close();
  });
});
