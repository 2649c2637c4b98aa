/**
 * Leak kind 1: a lease still held when its scope closes is reclaimed (given back exactly once) and
 * reported with the scope, and with the line that acquired it, in the format DESIGN.md shows.
 */
import { describe, expect, it } from 'vitest';
import {
  configure,
  getReleaseErrors,
  LeaseReleasedError,
  openScope,
  track,
  withScope,
  type LeakReport,
  type Lease,
  type Scope,
} from '../../src/index.js';
import { allowLeaksInEveryTest, collectReports, collectWarnings, flush, sleep, useCleanCustodian, sitesIn } from '../helpers.js';

useCleanCustodian({ leaks: 'reclaim' });
allowLeaksInEveryTest();

const siteOf = sitesIn(import.meta.url);

type Unreleased = Extract<LeakReport, { type: 'unreleased' }>;

function onlyUnreleased(reports: readonly LeakReport[]): Unreleased {
  expect(reports.map((r) => r.type)).toEqual(['unreleased']);
  return reports[0] as Unreleased;
}

const ADVICE =
  '  Release each one on every path (`await using lease = ...`, or lease.release() in a finally block), or let the scope own it with scope.use() / scope.adopt().';
const CANCELLED_ADVICE =
  '  The task did not stop when its signal aborted. Pass scope.signal to what it awaits so that it stops and releases its resources itself.';

describe('a lease still held when its scope closes is reclaimed', () => {
  it('calls the release function exactly once, with the value, when the scope closes', async () => {
    const released: string[] = [];
    let lease: Lease<string> | undefined;
    await withScope(() => {
      lease = track('conn-1', { release: (v) => void released.push(v), kind: 'db connection' });
      expect(released).toEqual([]);
    });
    expect(released).toEqual(['conn-1']);
    expect(lease?.released).toBe(true);
    // Giving it back again later is harmless and does not release twice.
    await lease?.release();
    expect(released).toEqual(['conn-1']);
  });

  it('makes the reclaimed lease unusable: reading its value throws LeaseReleasedError', async () => {
    let lease: Lease<string> | undefined;
    await withScope(() => {
      lease = track('conn', { release: () => {}, kind: 'db connection' });
    });
    expect(() => lease?.value).toThrow(LeaseReleasedError);
  });

  it('reclaims every unreleased lease in reverse order of acquisition', async () => {
    const released: number[] = [];
    await withScope(() => {
      for (let i = 1; i <= 3; i++) track(i, { release: (v) => void released.push(v) });
    });
    expect(released).toEqual([3, 2, 1]);
  });

  it('reports nothing when the code released every lease itself', async () => {
    const { reports, stop } = collectReports();
    const released: string[] = [];
    await withScope(async () => {
      const lease = track('conn', { release: (v) => void released.push(v), kind: 'db connection' });
      await lease.release();
    });
    stop();
    expect(released).toEqual(['conn']);
    expect(reports).toEqual([]);
  });

  it('reports nothing for a lease released with `await using`', async () => {
    const { reports, stop } = collectReports();
    await withScope(async () => {
      await using _lease = track('conn', { release: () => {}, kind: 'db connection' });
    });
    stop();
    expect(reports).toEqual([]);
  });
});

describe('the unreleased report names the scope and each resource with its site and hold time', () => {
  it('has type "unreleased", the scope {id, name, site} and the resource {kind, label, site, heldMs}', async () => {
    const { reports, stop } = collectReports();
    let scopeId = -1;
    const task = async (scope: Scope) => {
      scopeId = scope.id;
      track('c', { release: () => {}, kind: 'mysql connection', label: 'primary' }); // site:mysql
      await sleep(20);
    };
    await withScope(task, { name: 'GET /users/:id' }); // site:scope
    stop();
    const report = onlyUnreleased(reports);
    expect(report.scope).toEqual({ id: scopeId, name: 'GET /users/:id', site: siteOf('scope', 'withScope') });
    expect(report.policy).toBe('reclaim');
    expect(report.cancelled).toBe(false);
    expect(report.resources).toHaveLength(1);
    const [resource] = report.resources;
    expect(resource).toEqual({ kind: 'mysql connection', label: 'primary', site: siteOf('mysql', 'track'), heldMs: expect.any(Number) });
    expect(resource?.heldMs).toBeGreaterThanOrEqual(15);
    expect(resource?.heldMs).toBeLessThan(1000);
  });

  it('formats the text as in DESIGN.md: headline, one aligned line per resource, advice', async () => {
    const { reports, stop } = collectReports();
    let scopeId = -1;
    await withScope(
      (scope) => {
        scopeId = scope.id;
        track('m', { release: () => {}, kind: 'mysql connection' }); // site:first
        track('r', { release: () => {}, kind: 'redis' }); // site:second
      },
      { name: 'GET /users/:id' },
    );
    stop();
    const report = onlyUnreleased(reports);
    expect(report.cancelled).toBe(false);
    const [redis, mysql] = report.resources; // reclaimed newest first
    expect(redis?.kind).toBe('redis');
    expect(mysql?.kind).toBe('mysql connection');
    const first = siteOf('first', 'track');
    const second = siteOf('second', 'track');
    const width = Math.max(first.length, second.length);
    expect(report.message.split('\n')).toEqual([
      `scope "GET /users/:id" (#${scopeId}) closed with 2 unreleased resources (reclaimed)`,
      `  redis             x1  acquired at ${second.padEnd(width)}  held ${Math.round(redis?.heldMs ?? -1)} ms`,
      `  mysql connection  x1  acquired at ${first.padEnd(width)}  held ${Math.round(mysql?.heldMs ?? -1)} ms`,
      ADVICE,
    ]);
  });

  it('names the exact line and column that acquired the resource', async () => {
    const { reports, stop } = collectReports();
    await withScope(() => {
      track('c', { release: () => {}, kind: 'file handle' }); // site:exact
    });
    stop();
    const line = Number(siteOf('exact', 'track').split(':')[1]);
    expect(line).toBeGreaterThan(0);
    expect(onlyUnreleased(reports).message).toMatch(
      new RegExp(`\\n  file handle  x1  acquired at test/leaks/unreleased\\.test\\.ts:${line}:\\d+  held \\d+ ms\\n`),
    );
  });

  it('says "1 unreleased resource" (singular) and titles an unnamed scope by where it was opened', async () => {
    const { reports, stop } = collectReports();
    let scopeId = -1;
    const task = (scope: Scope) => {
      scopeId = scope.id;
      track('c', { release: () => {} });
    };
    await withScope(task); // site:unnamed
    stop();
    const report = onlyUnreleased(reports);
    expect(report.scope.name).toBeUndefined();
    expect(report.message.split('\n')[0]).toBe(
      `scope #${scopeId} (opened at ${siteOf('unnamed', 'withScope')}) closed with 1 unreleased resource (reclaimed)`,
    );
    // kind defaults to "resource", no label
    expect(report.resources.map((r) => [r.kind, r.label])).toEqual([['resource', undefined]]);
  });

  it('shows the label next to the kind: "KIND (LABEL)"', async () => {
    const { reports, stop } = collectReports();
    await withScope(() => {
      track('c', { release: () => {}, kind: 'redis connection', label: 'cache' }); // site:labelled
    });
    stop();
    const report = onlyUnreleased(reports);
    expect(report.message.split('\n')[1]).toBe(
      `  redis connection (cache)  x1  acquired at ${siteOf('labelled', 'track')}  held ${Math.round(report.resources[0]?.heldMs ?? -1)} ms`,
    );
  });

  it('reports an openScope() closed by close() the same way, with the openScope line as its site', async () => {
    const { reports, stop } = collectReports();
    const scope = openScope({ name: 'consumer' }); // site:open
    scope.track('c', { release: () => {}, kind: 'channel' }); // site:scoped
    await scope.close();
    stop();
    const report = onlyUnreleased(reports);
    expect(report.scope).toEqual({ id: scope.id, name: 'consumer', site: siteOf('open', 'openScope') });
    expect(report.resources.map((r) => r.site)).toEqual([siteOf('scoped', 'track')]);
  });

  it('reports a leak in a child scope against the child, not the parent', async () => {
    const { reports, stop } = collectReports();
    let childId = -1;
    await withScope(
      async () => {
        await withScope(
          (child) => {
            childId = child.id;
            track('c', { release: () => {}, kind: 'socket' });
          },
          { name: 'child' },
        );
      },
      { name: 'parent' },
    );
    stop();
    const report = onlyUnreleased(reports);
    expect(report.scope.id).toBe(childId);
    expect(report.scope.name).toBe('child');
  });
});

describe('leases from the same kind, label and site are grouped into one line with a count', () => {
  it('prints three leases acquired on one line as one "x3" line with the longest hold', async () => {
    const { reports, stop } = collectReports();
    let scopeId = -1;
    await withScope(
      async (scope) => {
        scopeId = scope.id;
        for (let i = 0; i < 3; i++) {
          track(i, { release: () => {}, kind: 'redis connection' }); // site:loop
          await sleep(5);
        }
      },
      { name: 'batch' },
    );
    stop();
    const report = onlyUnreleased(reports);
    const site = siteOf('loop', 'track');
    expect(report.resources.map((r) => r.site)).toEqual([site, site, site]);
    const longest = Math.max(...report.resources.map((r) => r.heldMs));
    expect(report.message.split('\n')).toEqual([
      `scope "batch" (#${scopeId}) closed with 3 unreleased resources (reclaimed)`,
      `  redis connection  x3  acquired at ${site}  held ${Math.round(longest)} ms`,
      ADVICE,
    ]);
  });

  it('keeps leases with different labels from the same line on separate lines', async () => {
    const { reports, stop } = collectReports();
    await withScope(() => {
      for (const label of ['a', 'b', 'a']) track(label, { release: () => {}, kind: 'file', label }); // site:labels
    });
    stop();
    const report = onlyUnreleased(reports);
    const site = siteOf('labels', 'track');
    const lines = report.message.split('\n').slice(1, -1);
    expect(lines).toHaveLength(2);
    // newest first: the second "a" comes first, so the "a" group is listed first
    expect(lines[0]).toMatch(new RegExp(`^  file \\(a\\)  x2  acquired at ${escape(site)}  held \\d+ ms$`));
    expect(lines[1]).toMatch(new RegExp(`^  file \\(b\\)  x1  acquired at ${escape(site)}  held \\d+ ms$`));
  });

  it('pads the count column when a group reaches two digits', async () => {
    const { reports, stop } = collectReports();
    await withScope(() => {
      for (let i = 0; i < 12; i++) track(i, { release: () => {}, kind: 'buffer' }); // site:many
      track('x', { release: () => {}, kind: 'buffer', label: 'odd' }); // site:one
    });
    stop();
    const lines = onlyUnreleased(reports).message.split('\n');
    expect(lines[0]).toMatch(/closed with 13 unreleased resources \(reclaimed\)$/);
    const many = siteOf('many', 'track');
    const one = siteOf('one', 'track');
    const width = Math.max(many.length, one.length);
    expect(lines[1]).toMatch(new RegExp(`^  buffer \\(odd\\)  x1   acquired at ${escape(one.padEnd(width))}  held \\d+ ms$`));
    expect(lines[2]).toMatch(new RegExp(`^  buffer        x12  acquired at ${escape(many.padEnd(width))}  held \\d+ ms$`));
  });
});

describe('a lease still held by a task that was cancelled mid-flight is destroyed, not released', () => {
  it('calls destroy with the timeout reason and reports "cancelled: true" with the cancellation text', async () => {
    const { reports, stop } = collectReports();
    const calls: string[] = [];
    let reason: unknown;
    let scopeId = -1;
    let body: Promise<void> | undefined;
    const outcome = withScope(
      (scope) =>
        (body = (async () => {
          scopeId = scope.id;
          const destroy = (_v: string, why: unknown) => void (calls.push('destroy'), (reason = why));
          track('c', { release: () => void calls.push('release'), destroy, kind: 'conn' }); // site:cancelled
          await sleep(60);
          expect(scope.signal.aborted).toBe(true);
        })()),
      { name: 'slow', timeout: 10 },
    );
    await expect(outcome).rejects.toMatchObject({ name: 'TimeoutError' });
    await body; // let the abandoned body finish before the next test
    stop();
    expect(calls).toEqual(['destroy']);
    expect(reason).toMatchObject({ name: 'TimeoutError' });
    const report = onlyUnreleased(reports);
    expect(report).toMatchObject({ scope: { id: scopeId, name: 'slow' }, policy: 'reclaim', cancelled: true });
    expect(report.resources).toEqual([{ kind: 'conn', label: undefined, site: siteOf('cancelled', 'track'), heldMs: expect.any(Number) }]);
    expect(report.message.split('\n')).toEqual([
      `scope "slow" (#${scopeId}) was cancelled while its task still held 1 resource; they were destroyed, not released`,
      `  conn  x1  acquired at ${siteOf('cancelled', 'track')}  held ${Math.round(report.resources[0]?.heldMs ?? -1)} ms`,
      CANCELLED_ADVICE,
    ]);
  });

  it.each([
    ['its outer signal aborts', 'signal'],
    ['scope.cancel() is called', 'cancel'],
  ] as const)('does the same when %s while the body runs', async (_when, how) => {
    const { reports, stop } = collectReports();
    const calls: string[] = [];
    const controller = new AbortController();
    let opened: Scope | undefined;
    let body: Promise<void> | undefined;
    const outcome = withScope(
      (scope) =>
        (body = (async () => {
          opened = scope;
          track('a', { release: () => void calls.push('release a'), destroy: () => void calls.push('destroy a'), kind: 'conn' }); // site:cancel-a
          track('b', { release: () => void calls.push('release b'), destroy: () => void calls.push('destroy b'), kind: 'conn' }); // site:cancel-b
          await sleep(60);
        })()),
      how === 'signal' ? { name: 'stuck', signal: controller.signal } : { name: 'stuck', timeout: 60_000 },
    );
    await sleep(5);
    const cause = new Error('stop now');
    if (how === 'signal') controller.abort(cause);
    else opened?.cancel(cause);
    await expect(outcome).rejects.toBe(cause);
    await body;
    stop();
    expect(calls).toEqual(['destroy b', 'destroy a']);
    const report = onlyUnreleased(reports);
    expect(report.cancelled).toBe(true);
    const [b, a] = report.resources; // destroyed newest first
    const siteA = siteOf('cancel-a', 'track');
    const siteB = siteOf('cancel-b', 'track');
    expect([b?.site, a?.site]).toEqual([siteB, siteA]);
    const width = Math.max(siteA.length, siteB.length);
    expect(report.message.split('\n')).toEqual([
      `scope "stuck" (#${opened?.id}) was cancelled while its task still held 2 resources; they were destroyed, not released`,
      `  conn  x1  acquired at ${siteB.padEnd(width)}  held ${Math.round(b?.heldMs ?? -1)} ms`,
      `  conn  x1  acquired at ${siteA.padEnd(width)}  held ${Math.round(a?.heldMs ?? -1)} ms`,
      CANCELLED_ADVICE,
    ]);
  });

  it('is not a LeakError under the "throw" policy: the task rejects with the cancellation reason, and a warning is emitted', async () => {
    configure({ leaks: 'throw' });
    const { reports, stop } = collectReports();
    const { warnings, stop: stopWarnings } = collectWarnings();
    let scopeId = -1;
    let body: Promise<void> | undefined;
    const error = await withScope(
      (scope) =>
        (body = (async () => {
          scopeId = scope.id;
          track('c', { release: () => {}, kind: 'conn' });
          await sleep(60);
        })()),
      { name: 'strict', timeout: 10 },
    ).catch((e: unknown) => e);
    await body;
    await flush();
    stop();
    stopWarnings();
    expect(error).toMatchObject({ name: 'TimeoutError', code: 'ERR_CUSTODIAN_SCOPE_TIMEOUT' });
    expect(getReleaseErrors(error)).toEqual([]);
    const report = onlyUnreleased(reports);
    expect(report).toMatchObject({ policy: 'throw', cancelled: true });
    const [headline, ...detail] = report.message.split('\n');
    expect(headline).toBe(
      `scope "strict" (#${scopeId}) was cancelled while its task still held 1 resource; they were destroyed, not released`,
    );
    expect(warnings.map((w) => [w.name, w.code, w.message, w.detail])).toEqual([
      ['ResourceLeakWarning', 'CUSTODIAN_UNRELEASED', headline, detail.join('\n')],
    ]);
  });

  it('emits no warning under the "reclaim" policy', async () => {
    const { reports, stop } = collectReports();
    const { warnings, stop: stopWarnings } = collectWarnings();
    let body: Promise<void> | undefined;
    await withScope(
      () =>
        (body = (async () => {
          track('c', { release: () => {}, kind: 'conn' });
          await sleep(60);
        })()),
      { timeout: 10 },
    ).catch(() => {});
    await body;
    await flush();
    stop();
    stopWarnings();
    expect(onlyUnreleased(reports)).toMatchObject({ policy: 'reclaim', cancelled: true });
    expect(warnings).toEqual([]);
  });

  it('reports a task that released nothing but finished before the scope closed as an ordinary leak (cancelled: false)', async () => {
    // cancel() on a scope with no timeout or signal waits for the body: it is no longer running when
    // the scope closes, so what it left is reclaimed (released, not destroyed) as usual.
    const { reports, stop } = collectReports();
    const calls: string[] = [];
    let scopeId = -1;
    const cause = new Error('cancelled by the task itself');
    const error = await withScope(
      async (scope) => {
        scopeId = scope.id;
        track('c', { release: () => void calls.push('release'), destroy: () => void calls.push('destroy'), kind: 'conn' });
        scope.cancel(cause);
        await sleep(5);
      },
      { name: 'self' },
    ).catch((e: unknown) => e);
    stop();
    expect(error).toBe(cause);
    expect(calls).toEqual(['release']);
    const report = onlyUnreleased(reports);
    expect(report.cancelled).toBe(false);
    expect(report.message.split('\n')[0]).toBe(`scope "self" (#${scopeId}) closed with 1 unreleased resource (reclaimed)`);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
