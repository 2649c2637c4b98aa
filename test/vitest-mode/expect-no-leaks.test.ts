/**
 * expectNoLeaks(), the toLeakResources matcher, allowLeaks() and ignoreCurrent(), in process: this
 * file itself runs with the leak check of adapters/vitest/setup.ts on, so a test here that leaves
 * something behind by mistake fails too. What a test keeps past its end on purpose (to show that
 * its end does not report it again) is released in afterAll.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { allowLeaks, expectNoLeaks, ignoreCurrent, LeakCheckError, type FoundLeak } from '../../adapters/vitest/index.js';
import { handlesOf } from '../../adapters/vitest/handles.js';
import { Run, runs } from '../../adapters/vitest/runs.js';
import { inspect, openScope, track, withScope, type Lease, type Scope } from '../../src/index.js';
import { rejectionOf, sitesIn, sleep, useCleanCustodian } from '../helpers.js';

// Leases reclaimed by a scope's close are reported to expectNoLeaks(); no process warning needed.
useCleanCustodian({ leaks: 'reclaim' });

const siteOf = sitesIn(import.meta.url);

/** Captured while the file is collected: no test (and no file run) is current there. */
const outside = AsyncLocalStorage.snapshot();

const noop = () => {};

/** Held past the end of the test that acquired it, on purpose; released when the file ends. */
const keptPastTest: (Lease<unknown> | Scope)[] = [];
afterAll(async () => {
  for (const item of keptPastTest.splice(0)) await ('release' in item ? item.release() : item.close());
});

/** expectNoLeaks(fn) must reject with a LeakCheckError: returns it. */
async function leakError(promise: Promise<unknown>): Promise<LeakCheckError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(LeakCheckError);
  return error as LeakCheckError;
}

const labelsOf = (leaks: readonly FoundLeak[]) => leaks.map((l) => l.label).sort();

/** Outstanding leases and open scopes, to check a call left nothing in the registry. */
const registryCounts = () => {
  const snapshot = inspect();
  return { leases: snapshot.leases.outstanding, scopes: snapshot.scopes.open };
};

/** Whether the async_hooks handle tracking is (still) on: an interval started in a run is then tracked. */
function handleTrackingOn(): boolean {
  const probe = new Run('block', 'probe', undefined);
  const timer = runs.run(probe, () => setInterval(noop, 1000));
  try {
    return handlesOf(probe, performance.now()).length > 0;
  } finally {
    clearInterval(timer);
  }
}

describe('expectNoLeaks() resolves with what fn returns when nothing is left behind', () => {
  it('a sync fn', async () => {
    await expect(expectNoLeaks(() => 42)).resolves.toBe(42);
  });

  it('an async fn, whose leases are released before it returns', async () => {
    await expect(
      expectNoLeaks(async () => {
        const lease = track({ id: 1 }, { release: noop, kind: 'connection' });
        await sleep(1);
        await lease.release();
        return 'done';
      }),
    ).resolves.toBe('done');
  });

  it('a fn that opens and closes scopes and releases what it tracks in them', async () => {
    const value = await expectNoLeaks(async () => {
      await withScope(async () => {
        await using _lease = track('c', { release: noop, kind: 'connection' });
        await sleep(1);
      });
      const scope = openScope({ name: 'closed in time' });
      await scope.close();
      return { ok: true };
    });
    expect(value).toEqual({ ok: true });
  });
});

describe('expectNoLeaks() rejects with a LeakCheckError listing each leftover', () => {
  it('an unscoped lease, an open scope (with what it holds) and a reclaimed lease, each with its exact site', async () => {
    const held: (Lease<unknown> | Scope)[] = [];
    const error = await leakError(
      expectNoLeaks(
        async () => {
          held.push(track('c1', { release: noop, kind: 'db connection', label: 'orders' })); // site:unscoped
          const scope = openScope({ name: 'import job' }); // site:scope
          held.push(scope);
          scope.track('c2', { release: noop, kind: 'cache connection', label: 'in scope' }); // site:held
          await withScope(async () => {
            track('c3', { release: noop, kind: 'file', label: 'report.csv' }); // site:reclaimed
            await sleep(1);
          });
          return 'value';
        },
        { waitMs: 20 },
      ),
    );
    try {
      const byType = new Map(error.leaks.map((l) => [l.type, l]));
      expect(error.leaks.map((l) => l.type).sort()).toEqual(['lease', 'reclaimed', 'scope']);

      const lease = byType.get('lease');
      expect(lease).toMatchObject({
        kind: 'db connection',
        label: 'orders',
        site: siteOf('unscoped', 'track'),
        detail: 'unscoped',
        holds: [],
      });
      expect(lease?.heldMs).toBeGreaterThanOrEqual(0);

      const scope = byType.get('scope');
      expect(scope).toMatchObject({ kind: 'scope', label: 'import job', site: siteOf('scope', 'openScope') });
      expect(scope?.holds).toHaveLength(1);
      expect(scope?.holds[0]).toMatchObject({ type: 'lease', kind: 'cache connection', label: 'in scope', site: siteOf('held', 'track') });

      const reclaimed = byType.get('reclaimed');
      expect(reclaimed).toMatchObject({ kind: 'file', label: 'report.csv', site: siteOf('reclaimed', 'track') });
      expect(reclaimed?.detail).toMatch(/closed while it was still held; custodian released it/);

      // The message names each leaking line.
      expect(error.message).toMatch(/^The function left 3 resources behind \(custodian waited \d+ ms for them to be released\):/);
      for (const [name, callee] of [
        ['unscoped', 'track'],
        ['scope', 'openScope'],
        ['held', 'track'],
        ['reclaimed', 'track'],
      ] as const) {
        expect(error.message).toContain(siteOf(name, callee));
      }
      expect(error.message).toContain('expectNoLeaks(fn, { ignore: { sites: [...] } })');
      expect(error.waitedMs).toBeGreaterThanOrEqual(19);
      // The stack points at the leaking lines, so that vitest prints their code.
      expect(error.stack).toContain(`${process.cwd()}/${siteOf('unscoped', 'track')}`);
    } finally {
      for (const item of held) await ('release' in item ? item.release() : item.close());
    }
  });

  it("fn's own error propagates unchanged, not a LeakCheckError, even when fn also leaked; the test does not fail for that leak", async () => {
    const boom = new RangeError('boom');
    const error = await rejectionOf(
      expectNoLeaks(async () => {
        keptPastTest.push(track('c', { release: noop, kind: 'connection', label: 'left by a failing fn' }));
        keptPastTest.push(openScope({ name: 'left open by a failing fn' }));
        await sleep(1);
        throw boom;
      }),
    );
    expect(error).toBe(boom);
    // The lease and the scope are still held when this test ends: its own check must not report them.
  });

  it("fn's synchronous throw propagates unchanged too", async () => {
    const boom = new Error('sync boom');
    const error = await rejectionOf(
      expectNoLeaks(() => {
        keptPastTest.push(track('c', { release: noop, kind: 'connection', label: 'left by a sync throw' }));
        throw boom;
      }),
    );
    expect(error).toBe(boom);
  });
});

describe('waiting for stragglers', () => {
  it('a release shortly after fn returns passes (default waitMs 1000)', async () => {
    let lease: Lease<string> | undefined;
    const started = performance.now();
    await expectNoLeaks(() => {
      lease = track('c', { release: noop, kind: 'connection' });
      setTimeout(() => void lease?.release(), 50);
    });
    expect(lease?.released).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(performance.now() - started).toBeLessThan(900);
  });

  it('with { waitMs: 10 } a release at 200 ms fails, and the time waited is reported', async () => {
    let lease: Lease<string> | undefined;
    let released: Promise<void> | undefined;
    const error = await leakError(
      expectNoLeaks(
        () => {
          lease = track('c', { release: noop, kind: 'connection', label: 'slow' }); // site:slow
          released = sleep(200).then(() => lease?.release());
        },
        { waitMs: 10 },
      ),
    );
    expect(labelsOf(error.leaks)).toEqual(['slow']);
    expect(error.leaks[0]?.site).toBe(siteOf('slow', 'track'));
    expect(error.waitedMs).toBeGreaterThanOrEqual(9);
    expect(error.waitedMs).toBeLessThan(150);
    expect(error.message).toMatch(new RegExp(`custodian waited ${Math.round(error.waitedMs)} ms for it to be released`));
    await released;
    expect(lease?.released).toBe(true);
  });

  it('{ waitMs: 0 } does not wait at all', async () => {
    let lease: Lease<string> | undefined;
    const error = await leakError(
      expectNoLeaks(
        () => {
          lease = track('c', { release: noop, kind: 'connection', label: 'zero' });
        },
        { waitMs: 0 },
      ),
    );
    expect(error.waitedMs).toBeLessThan(5);
    await lease?.release();
  });
});

describe('attribution', () => {
  it('two concurrent expectNoLeaks() calls each report only their own leak', async () => {
    const held: Lease<string>[] = [];
    const block = (label: string) =>
      expectNoLeaks(
        async () => {
          await sleep(1);
          held.push(track(label, { release: noop, kind: 'connection', label }));
          await sleep(5);
          // Acquired and released by each block while the other one is running: not a leak of either.
          const brief = track(label, { release: noop, kind: 'brief' });
          await sleep(1);
          await brief.release();
        },
        { waitMs: 30 },
      );
    const [a, b] = await Promise.allSettled([block('A'), block('B')]);
    try {
      expect(a.status).toBe('rejected');
      expect(b.status).toBe('rejected');
      const errorA = (a as PromiseRejectedResult).reason as LeakCheckError;
      const errorB = (b as PromiseRejectedResult).reason as LeakCheckError;
      expect(labelsOf(errorA.leaks)).toEqual(['A']);
      expect(labelsOf(errorB.leaks)).toEqual(['B']);
      expect(errorA.message).not.toContain('(B)');
      expect(errorB.message).not.toContain('(A)');
    } finally {
      for (const lease of held) await lease.release();
    }
  });

  it('a leak one call reports is not reported again by a concurrent call that ends later', async () => {
    const held: Lease<string>[] = [];
    const first = expectNoLeaks(
      () => {
        held.push(track('x', { release: noop, kind: 'connection', label: 'first' }));
      },
      { waitMs: 0 },
    );
    const second = expectNoLeaks(async () => {
      await first.catch(noop);
      await sleep(5);
      return 'clean';
    });
    try {
      expect(labelsOf((await leakError(first)).leaks)).toEqual(['first']);
      await expect(second).resolves.toBe('clean');
    } finally {
      for (const lease of held) await lease.release();
    }
  });

  it('a leak inside expectNoLeaks() that the test catches does not fail the enclosing test too (reported once)', async () => {
    const error = await leakError(
      expectNoLeaks(
        async () => {
          keptPastTest.push(track('c', { release: noop, kind: 'connection', label: 'caught' }));
          keptPastTest.push(openScope({ name: 'caught scope' }));
          await withScope(() => {
            track('r', { release: noop, kind: 'connection', label: 'caught reclaimed' });
          });
        },
        { waitMs: 10 },
      ),
    );
    expect(labelsOf(error.leaks)).toEqual(['caught', 'caught reclaimed', 'caught scope']);
    // Still held and open when this test ends: the test's own check must not report them again.
  });

  it('what is reported once is not reported again when a scope later reclaims it', async () => {
    const outer = openScope({ name: 'outer, closed by the test' });
    const error = await leakError(
      expectNoLeaks(
        () =>
          outer.run(() => {
            track('c', { release: noop, kind: 'connection', label: 'in outer' });
          }),
        { waitMs: 10 },
      ),
    );
    expect(labelsOf(error.leaks)).toEqual(['in outer']);
    // Closing the scope reclaims the lease and publishes a report about it: already reported, and not the test's.
    await outer.close();
  });

  it('what fn leaves behind is the block’s, not the test’s: the test ends clean after releasing it', async () => {
    let lease: Lease<string> | undefined;
    await leakError(
      expectNoLeaks(
        () => {
          lease = track('c', { release: noop, kind: 'connection', label: 'later' });
        },
        { waitMs: 0 },
      ),
    );
    await lease?.release();
  });
});

describe('options', () => {
  it('ignore.sites: an exact site, a file, a folder and a RegExp', async () => {
    const held: Lease<string>[] = [];
    const leak = (label: string) => {
      const lease = track(label, { release: noop, kind: 'connection', label }); // site:ignored
      held.push(lease);
      return lease;
    };
    try {
      const site = siteOf('ignored', 'track');
      const file = site.replace(/:\d+:\d+$/, '');
      for (const sites of [[site], [file], [site.replace(/:\d+$/, '')], ['test/vitest-mode/'], [/expect-no-leaks\.test\.ts:\d+/]]) {
        await expect(expectNoLeaks(() => void leak(String(sites[0])), { ignore: { sites }, waitMs: 0 })).resolves.toBeUndefined();
      }
      // A rule that matches nothing ignores nothing.
      const error = await leakError(
        expectNoLeaks(() => void leak('not ignored'), { ignore: { sites: ['test/elsewhere.ts', 'test/vitest-mode'] }, waitMs: 0 }),
      );
      expect(labelsOf(error.leaks)).toEqual(['not ignored']);
    } finally {
      for (const lease of held) await lease.release();
    }
  });

  it('ignore.kinds: leases of that kind, and open scopes with kind "scope"', async () => {
    const held: (Lease<unknown> | Scope)[] = [];
    try {
      const error = await leakError(
        expectNoLeaks(
          () => {
            held.push(track(1, { release: noop, kind: 'metrics timer', label: 'ignored' }));
            held.push(track(2, { release: noop, kind: 'connection', label: 'reported' }));
            held.push(openScope({ name: 'reported scope' }));
          },
          { ignore: { kinds: ['metrics timer'] }, waitMs: 0 },
        ),
      );
      expect(labelsOf(error.leaks)).toEqual(['reported', 'reported scope']);

      const ignoredScope = await leakError(
        expectNoLeaks(
          () => {
            const scope = openScope({ name: 'ignored scope' });
            held.push(scope);
            // An ignored scope's leases are still reported.
            scope.track(3, { release: noop, kind: 'connection', label: 'held by an ignored scope' });
          },
          { ignore: { kinds: ['scope'] }, waitMs: 0 },
        ),
      );
      expect(ignoredScope.leaks.map((l) => [l.type, l.label])).toEqual([['lease', 'held by an ignored scope']]);

      await expect(
        expectNoLeaks(
          () => {
            held.push(openScope({ name: 'ignored' }));
          },
          { ignore: { kinds: ['scope'] }, waitMs: 0 },
        ),
      ).resolves.toBeUndefined();
    } finally {
      for (const item of held.reverse()) await ('release' in item ? item.release() : item.close());
    }
  });

  it('handles: true catches an interval left running, and passes when it is cleared', async () => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const error = await leakError(
        expectNoLeaks(
          () => {
            timer = setInterval(noop, 1000); // site:interval
          },
          { handles: true, waitMs: 20 },
        ),
      );
      expect(error.leaks).toHaveLength(1);
      expect(error.leaks[0]).toMatchObject({ type: 'handle', kind: 'interval', site: siteOf('interval', 'setInterval') });
      expect(error.message).toContain(siteOf('interval', 'setInterval'));
    } finally {
      clearInterval(timer);
    }

    await expect(
      expectNoLeaks(
        () => {
          const cleared = setInterval(noop, 1000);
          setTimeout(() => clearInterval(cleared), 20);
          return 'cleared';
        },
        { handles: true },
      ),
    ).resolves.toBe('cleared');

    // The tracking is on only while such a call runs.
    expect(handleTrackingOn()).toBe(false);
    await expect(expectNoLeaks(() => handleTrackingOn(), { handles: true })).resolves.toBe(true);
    expect(handleTrackingOn()).toBe(false);
  });

  it('without handles: true, an interval left running is not a leak', async () => {
    let timer: NodeJS.Timeout | undefined;
    await expect(
      expectNoLeaks(() => {
        timer = setInterval(noop, 1000);
      }),
    ).resolves.toBeUndefined();
    clearInterval(timer);
  });
});

describe('bad input throws a TypeError naming what is wrong, and leaks nothing', () => {
  const cases: [string, unknown, RegExp][] = [
    ['waitMs -1', { waitMs: -1 }, /^expectNoLeaks\(\): option 'waitMs' must be a whole number of milliseconds/],
    ['an unknown option', { unknown: 1 }, /^expectNoLeaks\(\): unknown option 'unknown'/],
    ['ignore.sites not an array', { ignore: { sites: 'x' } }, /^expectNoLeaks\(\): option 'ignore': option 'sites' must be an array/],
    [
      'ignore.kinds with a number',
      { ignore: { kinds: [1] } },
      /^expectNoLeaks\(\): option 'ignore': option 'kinds' must be an array of non-empty strings, got an array containing 1/,
    ],
    ['handles not a boolean', { handles: 'yes' }, /^expectNoLeaks\(\): option 'handles' must be true or false, got "yes"/],
    ['ignore not an object', { ignore: ['x'] }, /^expectNoLeaks\(\): option 'ignore' must be an object/],
    ['options not an object', 5, /^expectNoLeaks\(\): options must be an object/],
  ];

  it.each(cases)('%s', async (_name, options, message) => {
    const before = registryCounts();
    let called = false;
    const fn = () => {
      called = true;
      track(1, { release: noop });
    };
    const error = await rejectionOf(expectNoLeaks(fn, options as never));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(message);
    // Also with handles: true before the bad option: the call fails before it starts tracking handles.
    const withHandles = typeof options === 'object' ? { handles: true, ...options } : options;
    await expect(expectNoLeaks(fn, withHandles as never)).rejects.toThrow(TypeError);
    expect(called).toBe(false);
    expect(registryCounts()).toEqual(before);
    expect(handleTrackingOn()).toBe(false);
  });

  it('fn not a function', async () => {
    for (const fn of [undefined, null, 'fn', { then: noop }]) {
      const error = await rejectionOf(expectNoLeaks(fn as never));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/^expectNoLeaks\(\): fn must be a function, got /);
    }
  });

  it('expectNoLeaks() returns a promise even for bad input (it never throws synchronously)', () => {
    const promise = expectNoLeaks(5 as never);
    expect(promise).toBeInstanceOf(Promise);
    return promise.then(
      () => expect.unreachable(),
      (error: unknown) => expect(error).toBeInstanceOf(TypeError),
    );
  });
});

describe('the toLeakResources matcher', () => {
  it('.not passes for a function that leaves nothing behind', async () => {
    await expect(async () => {
      const lease = track(1, { release: noop });
      await lease.release();
    }).not.toLeakResources();
    await expect(() => 1).not.toLeakResources();
  });

  it('passes without .not for a function that leaks', async () => {
    let lease: Lease<number> | undefined;
    await expect(() => {
      lease = track(1, { release: noop, kind: 'connection' });
    }).toLeakResources({ waitMs: 0 });
    await lease?.release();
  });

  it('.not on a leaky function rejects with a message naming the leaking line', async () => {
    let lease: Lease<number> | undefined;
    const error = await rejectionOf(
      expect(() => {
        lease = track(1, { release: noop, kind: 'connection', label: 'matcher' }); // site:matcher
      }).not.toLeakResources({ waitMs: 5 }),
    );
    await lease?.release();
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toMatch(/^expected the function to leave nothing behind, but it left 1 \(waited \d+ ms\):/);
    expect(message).toContain(siteOf('matcher', 'track'));
    expect(message).toContain('connection (matcher)');
  });

  it('without .not on a clean function rejects', async () => {
    const error = await rejectionOf(expect(() => 1).toLeakResources({ waitMs: 0 }));
    expect((error as Error).message).toMatch(/^expected the function to leave resources behind, but everything it acquired was released/);
  });

  it('a received value that is not a function is a TypeError', async () => {
    for (const received of [5, null, Promise.resolve()]) {
      const error = await rejectionOf((async () => expect(received).not.toLeakResources())());
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/^toLeakResources\(\): expect\(\) must be given the function to run, got /);
    }
  });

  it('bad options are a TypeError naming the option, under the matcher’s name', async () => {
    const error = await rejectionOf((async () => expect(() => 1).not.toLeakResources({ waitMs: -1 }))());
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/^toLeakResources\(\): option 'waitMs'/);
  });
});

describe('allowLeaks()', () => {
  it('outside any test it throws an Error that says so', () => {
    let error: unknown;
    outside(() => {
      try {
        allowLeaks();
      } catch (e) {
        error = e;
      }
    });
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^allowLeaks\(\) must be called inside a test, its beforeEach\/afterEach, or expectNoLeaks\(\)/,
    );
    expect((error as Error).message).toContain('ignoreLeaks()');
  });

  it('bad rules are a TypeError naming the option', () => {
    expect(() => allowLeaks({ sites: 5 } as never)).toThrow(TypeError);
    expect(() => allowLeaks({ sites: 5 } as never)).toThrow(/^allowLeaks\(\): option 'sites' must be an array/);
    expect(() => allowLeaks({ kinds: 'x' } as never)).toThrow(/^allowLeaks\(\): option 'kinds'/);
    expect(() => allowLeaks({ other: [] } as never)).toThrow(/^allowLeaks\(\): unknown option 'other'/);
    expect(() => allowLeaks([] as never)).toThrow(/^allowLeaks\(\): rules must be an object/);
  });

  it('inside expectNoLeaks(), it excuses that call only', async () => {
    const held: Lease<string>[] = [];
    try {
      await expect(
        expectNoLeaks(
          () => {
            allowLeaks();
            held.push(track('a', { release: noop, label: 'allowed' }));
          },
          { waitMs: 0 },
        ),
      ).resolves.toBeUndefined();
      await expect(
        expectNoLeaks(
          () => {
            allowLeaks({ kinds: ['allowed kind'] });
            held.push(track('a', { release: noop, kind: 'allowed kind' }));
            held.push(track('b', { release: noop, kind: 'other kind', label: 'still reported' }));
          },
          { waitMs: 0 },
        ),
      ).rejects.toMatchObject({ leaks: [expect.objectContaining({ label: 'still reported' })] });
    } finally {
      for (const lease of held) await lease.release();
    }
  });
});

describe('allowLeaks() in the test does not switch off an explicit check inside it', () => {
  it('expectNoLeaks() and the matcher still report what their function leaves', async () => {
    allowLeaks({ kinds: ['inner kind'] });
    allowLeaks();
    const held: Lease<number>[] = [];
    try {
      const error = await rejectionOf(
        expectNoLeaks(() => void held.push(track(1, { release: noop, kind: 'inner kind', label: 'inner' })), { waitMs: 0 }),
      );
      expect(error).toBeInstanceOf(LeakCheckError);
      expect((error as LeakCheckError).leaks.map((l) => l.label)).toEqual(['inner']);
      await expect(() => void held.push(track(2, { release: noop }))).toLeakResources({ waitMs: 0 });
    } finally {
      for (const lease of held) await lease.release();
    }
  });
});

describe('a lease whose release hangs when its scope closes', () => {
  it('is listed once, as a release that did not settle (not also as released)', async () => {
    const error = await rejectionOf(
      expectNoLeaks(
        () =>
          withScope(
            (scope) => {
              scope.track(1, { release: () => new Promise(() => {}), kind: 'hung connection' });
            },
            { disposeTimeoutMs: 20 },
          ),
        { waitMs: 0 },
      ),
    );
    const leaks = (error as LeakCheckError).leaks;
    expect(leaks).toHaveLength(1);
    expect(leaks[0]).toMatchObject({ type: 'reclaimed', kind: 'hung connection' });
    expect(leaks[0]?.detail).toMatch(/^its release did not settle within 20 ms when scope #\d+ .*closed$/);
  });

  it('a hung defer() cleanup, which records no site, is shown at its scope’s opening line', async () => {
    const error = await rejectionOf(
      expectNoLeaks(
        () =>
          withScope(
            (scope) => {
              scope.defer(() => new Promise(() => {}));
            },
            { disposeTimeoutMs: 20 },
          ), // site:deferScope
        { waitMs: 0 },
      ),
    );
    const leak = (error as LeakCheckError).leaks[0];
    expect(leak?.detail).toMatch(/^a use\(\)\/adopt\(\)\/defer\(\) cleanup of that scope: its release did not settle/);
    expect(leak?.site).toMatch(/^test\/vitest-mode\/expect-no-leaks\.test\.ts:\d+:\d+$/);
  });
});

describe('ignoreCurrent()', () => {
  it('adopts what is held when it is called; what is acquired after it is reported', async () => {
    const held: Lease<string>[] = [];
    try {
      const error = await leakError(
        expectNoLeaks(
          () => {
            held.push(track('before', { release: noop, label: 'before' }));
            ignoreCurrent();
            held.push(track('after', { release: noop, label: 'after' })); // site:after
          },
          { waitMs: 0 },
        ),
      );
      expect(error.leaks).toHaveLength(1);
      expect(error.leaks[0]).toMatchObject({ label: 'after', site: siteOf('after', 'track') });
    } finally {
      for (const lease of held) await lease.release();
    }
  });

  it('what the test holds when it calls it is not reported at the test’s end', async () => {
    keptPastTest.push(track('adopted', { release: noop, kind: 'connection', label: 'adopted by ignoreCurrent' }));
    keptPastTest.push(openScope({ name: 'adopted scope' }));
    ignoreCurrent();
    // Later acquisitions are still checked.
    let after: Lease<string> | undefined;
    const error = await leakError(
      expectNoLeaks(
        () => {
          after = track('after', { release: noop, label: 'after ignoreCurrent' });
        },
        { waitMs: 0 },
      ),
    );
    expect(labelsOf(error.leaks)).toEqual(['after ignoreCurrent']);
    await after?.release();
    // The adopted lease and scope are still held: this test's end must not report them.
  });
});
