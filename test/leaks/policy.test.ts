/**
 * The leak policy: `reclaim` (silent), `warn` (default: a ResourceLeakWarning), `throw` (a LeakError
 * from the scope's close). Whatever the policy, leases are reclaimed and every report reaches the
 * `custodian:leak` diagnostics channel and the `onLeak` hook. Identical warnings are throttled.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  configure,
  getReleaseErrors,
  LEAK_CHANNEL,
  LeakError,
  openScope,
  resetConfig,
  track,
  withScope,
  type LeakPolicy,
  type LeakReport,
} from '../../src/index.js';
import { allowLeaksInEveryTest, collectReports, collectWarnings, flush, sleep, useCleanCustodian } from '../helpers.js';

useCleanCustodian();
allowLeaksInEveryTest();

// Process warnings are emitted on a later tick: let the previous test's ones go out before collecting.
beforeEach(flush);

/** Runs a task that leaks one lease of `kind`; returns what was released and the task's promise. */
function leakyTask(options: { name?: string; leaks?: LeakPolicy } = {}, kind = 'db connection') {
  const released: string[] = [];
  let scopeId = -1;
  const done = withScope(
    (scope) => {
      scopeId = scope.id;
      track(`${kind} value`, { release: (v) => void released.push(v), kind });
      return 'result';
    },
    { name: options.name ?? 'task', ...(options.leaks === undefined ? {} : { leaks: options.leaks }) },
  );
  return { released, done, scopeId: () => scopeId };
}

const leakWarnings = (warnings: readonly Error[]) => warnings.filter((w) => w.name === 'ResourceLeakWarning');

describe('warn (the default) reclaims and emits a ResourceLeakWarning', () => {
  it('is the default policy', async () => {
    const { reports, stop } = collectReports();
    const task = leakyTask();
    await task.done;
    stop();
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ type: 'unreleased', policy: 'warn' });
  });

  it('emits name ResourceLeakWarning, code CUSTODIAN_UNRELEASED, message = headline, detail = the resource lines', async () => {
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const task = leakyTask({ name: 'GET /users/:id' });
    await expect(task.done).resolves.toBe('result');
    await flush();
    stop();
    stopReports();
    expect(task.released).toEqual(['db connection value']);
    const report = reports[0];
    if (report?.type !== 'unreleased') throw new Error('expected an unreleased report');
    const [headline, ...rest] = report.message.split('\n');
    expect(headline).toBe(`scope "GET /users/:id" (#${task.scopeId()}) closed with 1 unreleased resource (reclaimed)`);
    expect(warnings).toHaveLength(1);
    const [warning] = warnings;
    expect(warning?.name).toBe('ResourceLeakWarning');
    expect(warning?.code).toBe('CUSTODIAN_UNRELEASED');
    expect(warning?.message).toBe(headline);
    expect(warning?.detail).toBe(rest.join('\n'));
    expect(warning?.detail?.split('\n')[0]).toMatch(
      /^ {2}db connection {2}x1 {2}acquired at test\/leaks\/policy\.test\.ts:\d+:\d+ {2}held \d+ ms$/,
    );
  });

  it('also publishes the report on the custodian:leak channel and calls onLeak', async () => {
    const hooked: LeakReport[] = [];
    configure({ onLeak: (r) => void hooked.push(r) });
    const { reports, stop } = collectReports();
    await leakyTask().done;
    stop();
    expect(reports).toHaveLength(1);
    expect(hooked).toEqual(reports);
    expect(hooked[0]).toBe(reports[0]);
  });
});

describe('reclaim gives the resources back without a warning, but still reports to the channel and onLeak', () => {
  it('emits no warning when configured globally', async () => {
    configure({ leaks: 'reclaim' });
    const hooked: LeakReport[] = [];
    configure({ onLeak: (r) => void hooked.push(r) });
    const channelReports: unknown[] = [];
    const onMessage = (m: unknown) => void channelReports.push(m);
    subscribe(LEAK_CHANNEL, onMessage);
    const { warnings, stop } = collectWarnings();
    const task = leakyTask();
    await task.done;
    await flush();
    stop();
    unsubscribe(LEAK_CHANNEL, onMessage);
    expect(LEAK_CHANNEL).toBe('custodian:leak');
    expect(task.released).toEqual(['db connection value']);
    expect(warnings).toEqual([]);
    expect(hooked).toHaveLength(1);
    expect(hooked[0]).toMatchObject({ type: 'unreleased', policy: 'reclaim' });
    expect(channelReports).toEqual(hooked);
  });

  it('emits no warning when asked per scope with withScope(fn, { leaks: "reclaim" }), overriding configure()', async () => {
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const task = leakyTask({ leaks: 'reclaim' });
    await task.done;
    await flush();
    stop();
    stopReports();
    expect(task.released).toEqual(['db connection value']);
    expect(warnings).toEqual([]);
    expect(reports.map((r) => r.type === 'unreleased' && r.policy)).toEqual(['reclaim']);
  });

  it('is inherited by child scopes', async () => {
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    await withScope(
      async () => {
        await withScope(async () => {
          await leakyTask({ name: 'grandchild' }).done;
        });
      },
      { leaks: 'reclaim' },
    );
    await flush();
    stop();
    stopReports();
    expect(warnings).toEqual([]);
    expect(reports).toMatchObject([{ type: 'unreleased', policy: 'reclaim', scope: { name: 'grandchild' } }]);
  });

  it('can be overridden again by a child scope', async () => {
    const { warnings, stop } = collectWarnings();
    await withScope(
      async () => {
        await leakyTask({ leaks: 'warn' }).done;
      },
      { leaks: 'reclaim' },
    );
    await flush();
    stop();
    expect(leakWarnings(warnings).map((w) => (w as Error & { code?: string }).code)).toEqual(['CUSTODIAN_UNRELEASED']);
  });
});

describe('throw reclaims and makes the scope close reject with a LeakError', () => {
  it('rejects withScope with a LeakError carrying the report; the resources are still reclaimed', async () => {
    const { reports, stop } = collectReports();
    const { warnings, stop: stopWarnings } = collectWarnings();
    const task = leakyTask({ leaks: 'throw', name: 'strict' });
    const error = await task.done.then(
      () => undefined,
      (e: unknown) => e,
    );
    await flush();
    stop();
    stopWarnings();
    expect(task.released).toEqual(['db connection value']);
    expect(error).toBeInstanceOf(LeakError);
    const leak = error as LeakError;
    expect(leak.name).toBe('LeakError');
    expect(leak.code).toBe('ERR_CUSTODIAN_LEAK');
    expect(reports).toHaveLength(1);
    expect(leak.report).toBe(reports[0]);
    expect(leak.report).toMatchObject({ type: 'unreleased', policy: 'throw', scope: { name: 'strict', id: task.scopeId() } });
    expect(leak.message).toBe(leak.report.message);
    expect(leak.message.split('\n')[0]).toBe(`scope "strict" (#${task.scopeId()}) closed with 1 unreleased resource (reclaimed)`);
    // The error is the report: no ResourceLeakWarning on top of it.
    expect(leakWarnings(warnings)).toEqual([]);
  });

  it('applies when configured globally, and to a scope closed with close()', async () => {
    configure({ leaks: 'throw' });
    const released: string[] = [];
    const scope = openScope({ name: 'manual' });
    scope.track('c', { release: (v) => void released.push(v) });
    await expect(scope.close()).rejects.toMatchObject({ name: 'LeakError', code: 'ERR_CUSTODIAN_LEAK' });
    expect(released).toEqual(['c']);
    expect(scope.state).toBe('closed');
  });

  it('resolves normally when nothing leaked', async () => {
    await expect(
      withScope(
        async () => {
          const lease = track('c', { release: () => {} });
          await lease.release();
          return 42;
        },
        { leaks: 'throw' },
      ),
    ).resolves.toBe(42);
  });

  it('is inherited by child scopes', async () => {
    let inner: unknown;
    await withScope(
      async () => {
        inner = await leakyTask({ name: 'child' }).done.catch((e: unknown) => e);
      },
      { leaks: 'throw' },
    );
    expect(inner).toMatchObject({ name: 'LeakError', report: { scope: { name: 'child' } } });
  });

  it("keeps the body's error primary and puts the LeakError in getReleaseErrors(err)", async () => {
    const { warnings, stop } = collectWarnings();
    const released: string[] = [];
    const bodyError = new Error('handler failed');
    let scopeId = -1;
    const error = await withScope(
      (scope) => {
        scopeId = scope.id;
        track('c', { release: (v) => void released.push(v), kind: 'db connection' });
        throw bodyError;
      },
      { leaks: 'throw', name: 'failing' },
    ).catch((e: unknown) => e);
    await flush();
    stop();
    expect(error).toBe(bodyError);
    expect(released).toEqual(['c']);
    const releaseErrors = getReleaseErrors(error);
    expect(releaseErrors).toHaveLength(1);
    expect(releaseErrors[0]).toBeInstanceOf(LeakError);
    expect(releaseErrors[0]).toMatchObject({ code: 'ERR_CUSTODIAN_LEAK', report: { type: 'unreleased', scope: { name: 'failing' } } });
    const leak = releaseErrors[0] as LeakError;
    expect(warnings.map((w) => [w.name, w.code, w.message, w.detail])).toEqual([
      [
        'ResourceReleaseWarning',
        'CUSTODIAN_RELEASE_FAILED',
        `scope "failing" (#${scopeId}) failed, and closing it raised 1 more error`,
        `  LeakError: ${leak.message}\n  the task's own error was rethrown; getReleaseErrors(error) returns these`,
      ],
    ]);
  });

  it('counts every error the close raised in the ResourceReleaseWarning ("N more errors")', async () => {
    const { warnings, stop } = collectWarnings();
    let scopeId = -1;
    const error = await withScope(
      (scope) => {
        scopeId = scope.id;
        scope.defer(() => {
          throw new Error('first cleanup failed');
        });
        track('c', { release: () => {}, kind: 'db connection' });
        throw new Error('handler failed');
      },
      { leaks: 'throw' },
    ).catch((e: unknown) => e);
    await flush();
    stop();
    expect(getReleaseErrors(error).map((e) => (e as Error).name)).toEqual(['Error', 'LeakError']);
    expect(warnings.map((w) => [w.code, w.message])).toEqual([
      [
        'CUSTODIAN_RELEASE_FAILED',
        expect.stringMatching(
          new RegExp(
            `^scope #${scopeId} \\(opened at test/leaks/policy\\.test\\.ts:\\d+:\\d+\\) failed, and closing it raised 2 more errors$`,
          ),
        ),
      ],
    ]);
    expect(warnings[0]?.detail?.split('\n')[0]).toBe('  Error: first cleanup failed');
  });

  it("keeps an async body's rejection primary too", async () => {
    const bodyError = new Error('async handler failed');
    const error = await withScope(
      async () => {
        track('c', { release: () => {} });
        await sleep(1);
        throw bodyError;
      },
      { leaks: 'throw' },
    ).catch((e: unknown) => e);
    expect(error).toBe(bodyError);
    expect(getReleaseErrors(error).map((e) => (e as Error).name)).toEqual(['LeakError']);
  });
});

describe('an onLeak hook that throws does not break the close', () => {
  it('closes the scope, returns the result and reports the hook failure as CUSTODIAN_ONLEAK_THREW', async () => {
    configure({
      leaks: 'reclaim',
      onLeak: () => {
        throw new Error('hook exploded');
      },
    });
    const { warnings, stop } = collectWarnings();
    const task = leakyTask();
    await expect(task.done).resolves.toBe('result');
    await flush();
    stop();
    expect(task.released).toEqual(['db connection value']);
    expect(warnings.map((w) => [w.name, w.code, w.message])).toEqual([
      [
        'ResourceLeakWarning',
        'CUSTODIAN_ONLEAK_THREW',
        'custodian: the onLeak hook threw while handling a "unreleased" report: Error: hook exploded',
      ],
    ]);
  });

  it('still emits the leak warning itself under warn', async () => {
    configure({
      onLeak: () => {
        throw new Error('hook exploded');
      },
    });
    const { warnings, stop } = collectWarnings();
    await leakyTask().done;
    await flush();
    stop();
    expect(warnings.map((w) => w.code)).toEqual(['CUSTODIAN_ONLEAK_THREW', 'CUSTODIAN_UNRELEASED']);
  });
});

describe('a release-timeout report follows the leak policy too', () => {
  /** A task whose scope owns a cleanup that never settles: the close gives up after 20 ms. */
  async function hungCleanup(leaks?: LeakPolicy): Promise<number> {
    let scopeId = -1;
    await withScope(
      (scope) => {
        scopeId = scope.id;
        scope.defer(() => new Promise<void>(() => {}));
      },
      { name: 'hung', disposeTimeoutMs: 20, ...(leaks === undefined ? {} : { leaks }) },
    );
    return scopeId;
  }

  const HUNG_MESSAGE = (id: number) =>
    `scope "hung" (#${id}): running the cleanup of deferred cleanup (from scope.use/adopt/defer) did not finish within 20 ms (disposeTimeoutMs); the scope stopped waiting and went on`;

  it('warns with code CUSTODIAN_RELEASE_TIMEOUT under warn', async () => {
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const id = await hungCleanup();
    await flush();
    stop();
    stopReports();
    expect(reports).toMatchObject([
      { type: 'release-timeout', scope: { id, name: 'hung' }, timeoutMs: 20, resource: { kind: 'deferred cleanup' } },
    ]);
    expect(reports[0]?.message.split('\n')[0]).toBe(HUNG_MESSAGE(id));
    expect(warnings.map((w) => [w.name, w.code, w.message])).toEqual([
      ['ResourceLeakWarning', 'CUSTODIAN_RELEASE_TIMEOUT', HUNG_MESSAGE(id)],
    ]);
  });

  it('emits no warning for a scope opened with leaks: "reclaim", but still reports to the channel', async () => {
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    const id = await hungCleanup('reclaim');
    await flush();
    stop();
    stopReports();
    expect(reports).toMatchObject([{ type: 'release-timeout', scope: { id } }]);
    expect(warnings).toEqual([]);
  });

  it('emits no warning under a global "reclaim"', async () => {
    configure({ leaks: 'reclaim' });
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    await hungCleanup();
    await flush();
    stop();
    stopReports();
    expect(reports.map((r) => r.type)).toEqual(['release-timeout']);
    expect(warnings).toEqual([]);
  });

  it('warns for a scope opened with leaks: "warn" under a global "reclaim"', async () => {
    configure({ leaks: 'reclaim' });
    const { warnings, stop } = collectWarnings();
    const id = await hungCleanup('warn');
    await flush();
    stop();
    expect(warnings.map((w) => [w.code, w.message])).toEqual([['CUSTODIAN_RELEASE_TIMEOUT', HUNG_MESSAGE(id)]]);
  });
});

describe('identical warnings are throttled to one per warningThrottleMs', () => {
  it('emits one warning for two identical leaks within the window', async () => {
    configure({ warningThrottleMs: 1000 });
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    await leakyTask({ name: 'same' }).done;
    await leakyTask({ name: 'same' }).done;
    await flush();
    stop();
    stopReports();
    expect(reports).toHaveLength(2); // the channel sees every report
    expect(leakWarnings(warnings)).toHaveLength(1);
  });

  it('throttles leaks from one line together whatever their scopes are named (a name per request)', async () => {
    configure({ warningThrottleMs: 1000 });
    const { warnings, stop } = collectWarnings();
    for (let id = 0; id < 100; id++) await leakyTask({ name: `GET /users/${id}` }).done;
    await flush();
    stop();
    expect(leakWarnings(warnings)).toHaveLength(1);
  });

  it('does not throttle leaks from different lines or of different kinds together', async () => {
    configure({ warningThrottleMs: 1000 });
    const { warnings, stop } = collectWarnings();
    await leakyTask({ name: 'same' }, 'db connection').done;
    await leakyTask({ name: 'same' }, 'redis connection').done;
    await withScope(() => void track('x', { release: () => {}, kind: 'db connection' }), { name: 'same' }); // another line
    await flush();
    stop();
    expect(leakWarnings(warnings)).toHaveLength(3);
  });

  it('says how many similar reports were suppressed in the first warning after the window', async () => {
    configure({ warningThrottleMs: 100 });
    const { warnings, stop } = collectWarnings();
    await leakyTask({ name: 'same' }).done;
    await leakyTask({ name: 'same' }).done;
    await leakyTask({ name: 'same' }).done;
    await sleep(110);
    await leakyTask({ name: 'same' }).done;
    await flush();
    stop();
    const emitted = leakWarnings(warnings) as (Error & { detail?: string })[];
    expect(emitted).toHaveLength(2);
    expect(emitted[0]?.detail).not.toMatch(/suppressed/);
    expect(emitted[1]?.message).toMatch(/^scope "same" \(#\d+\) closed with 1 unreleased resource \(reclaimed\)$/);
    const lastLine = emitted[1]?.detail?.split('\n').at(-1);
    expect(lastLine).toMatch(/^ {2}\(2 similar reports suppressed in the last \d+ ms; warningThrottleMs is 100\)$/);
  });

  it('forgets what it throttled on resetConfig()', async () => {
    configure({ warningThrottleMs: 10_000 });
    const { warnings, stop } = collectWarnings();
    const { reports, stop: stopReports } = collectReports();
    await leakyTask({ name: 'same' }).done;
    await leakyTask({ name: 'same' }).done; // throttled
    resetConfig(); // back to the defaults (warn, warningThrottleMs 10000), and the throttle is cleared
    await leakyTask({ name: 'same' }).done;
    await flush();
    stop();
    stopReports();
    expect(reports).toHaveLength(3);
    const emitted = leakWarnings(warnings) as (Error & { detail?: string })[];
    const [, , third] = reports;
    // The third is emitted, as if it were the first: no "similar reports suppressed" line.
    expect(emitted.map((w) => [w.message, w.detail].join('\n'))).toEqual([reports[0]?.message, third?.message]);
  });

  it('emits every warning with warningThrottleMs 0', async () => {
    configure({ warningThrottleMs: 0 });
    const { warnings, stop } = collectWarnings();
    for (let i = 0; i < 3; i++) await leakyTask({ name: 'same' }).done;
    await flush();
    stop();
    expect(leakWarnings(warnings)).toHaveLength(3);
    for (const w of leakWarnings(warnings) as (Error & { detail?: string })[]) expect(w.detail).not.toMatch(/suppressed/);
  });
});

describe('an unknown policy is refused with a TypeError that names the option', () => {
  it('in configure()', () => {
    expect(() => configure({ leaks: 'loud' as LeakPolicy })).toThrow(
      new TypeError("configure(): option 'leaks' must be one of 'reclaim', 'warn', 'throw', got \"loud\""),
    );
  });

  it('in withScope options', async () => {
    await expect(withScope(() => 1, { leaks: 'loud' as LeakPolicy })).rejects.toThrow(
      new TypeError("withScope(): option 'leaks' must be one of 'reclaim', 'warn', 'throw', got \"loud\""),
    );
  });
});
