/**
 * Factory functions that misbehave: a reset that hangs (bounded by the scope's disposeTimeoutMs),
 * a destroy that throws or rejects (an event with `error`, never thrown, the pool keeps working),
 * a create that throws synchronously or throws something that is not an Error, a validate that hangs.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { channels, configure, PoolCreateError, PoolTimeoutError, withScope, type LeakReport } from '../../src/index.js';
import { collectReports, flush, never, rejectionOf, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, record, settledFlag, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();
const siteOf = sitesIn(import.meta.url);

type ReleaseTimeout = Extract<LeakReport, { type: 'release-timeout' }>;
type Destroy = { pool: string; reason: string; error?: unknown; cause?: unknown };

describe('a reset that hangs', () => {
  it("is reported after the scope's disposeTimeoutMs, and the scope's close does not hang", async () => {
    allowLeaks(); // the scope reclaims the lease, and its reset hangs
    const fake = fakeFactory(() => ({ reset: () => never() }));
    const pool = newPool(fake.factory, { name: 'hung', kind: 'fake connection', max: 1 });
    const { reports, stop } = collectReports();
    const task = withScope(
      async () => {
        await pool.acquire(); // site:hung
      },
      { name: 'job', disposeTimeoutMs: 30 },
    );
    const done = settledFlag(task);
    await sleep(150);
    stop();
    expect(done.settled).toBe(true);
    await task;
    const timeouts = reports.filter((r): r is ReleaseTimeout => r.type === 'release-timeout');
    expect(timeouts).toHaveLength(1);
    expect(timeouts[0]?.timeoutMs).toBe(30);
    expect(timeouts[0]?.scope.name).toBe('job');
    expect(timeouts[0]?.resource).toMatchObject({ kind: 'fake connection', label: 'hung', site: siteOf('hung', 'acquire'), pool: 'hung' });
    expect(reports.map((r) => r.type).sort()).toEqual(['release-timeout', 'unreleased']);
    // The resource is stuck in its reset: still counted as borrowed, never handed out.
    expect(pool.stats()).toMatchObject({ borrowed: 1, available: 0 });
    expect(await rejectionOf(pool.acquire({ timeout: 20 }))).toBeInstanceOf(PoolTimeoutError);
  });

  it('is bounded by the global disposeTimeoutMs when the scope sets none', async () => {
    allowLeaks(); // the scope reclaims the lease, and its reset hangs
    configure({ disposeTimeoutMs: 30 });
    const pool = newPool(fakeFactory(() => ({ reset: () => never() })).factory, { name: 'hung-global' });
    const { reports, stop } = collectReports();
    const task = withScope(async () => {
      await pool.acquire();
    });
    const done = settledFlag(task);
    await sleep(150);
    stop();
    expect(done.settled).toBe(true);
    expect(reports.filter((r): r is ReleaseTimeout => r.type === 'release-timeout').map((r) => [r.timeoutMs, r.resource.pool])).toEqual([
      [30, 'hung-global'],
    ]);
  });

  it("a release the holder started and did not await is not the scope's to wait for", async () => {
    const pool = newPool(fakeFactory(() => ({ reset: () => never() })).factory);
    const { reports, stop } = collectReports();
    let released: { readonly settled: boolean } | undefined;
    await withScope(async () => {
      const lease = await pool.acquire();
      released = settledFlag(lease.release()); // its reset hangs
    });
    stop();
    expect(released?.settled).toBe(false);
    expect(pool.stats().borrowed).toBe(1);
    expect(reports).toEqual([]);
  });
});

describe('a destroy that fails', () => {
  it.each([
    [
      'throws',
      (error: Error) => () => {
        throw error;
      },
    ],
    ['rejects', (error: Error) => () => Promise.reject(error)],
  ])('that %s is published with `error`, never thrown, and the pool keeps working', async (_how, failWith) => {
    const destroys = record<Destroy>(channels.poolDestroy);
    const error = new Error('socket already closed');
    const fake = fakeFactory((f) => ({
      destroy: (r: Res) => {
        f.destroyed.push(r);
        return failWith(error)();
      },
    }));
    const pool = newPool(fake.factory, { name: 'bad-destroy', max: 1, maxUses: 1 });
    for (let i = 1; i <= 3; i++) {
      const lease = await pool.acquire();
      expect(lease.value.id).toBe(i);
      await expect(lease.release()).resolves.toBeUndefined(); // maxUses 1: retired, destroy fails
    }
    const broken = await pool.acquire();
    await expect(broken.destroy(new Error('broken'))).resolves.toBeUndefined();
    await pool.close();
    await flush();
    destroys.stop();
    expect(fake.destroyedIds()).toEqual([1, 2, 3, 4]);
    const mine = destroys.messages.filter((m) => m.pool === 'bad-destroy');
    expect(mine.map((m) => m.reason)).toEqual(['max-uses', 'max-uses', 'max-uses', 'destroyed']);
    expect(mine.every((m) => m.error === error)).toBe(true);
    expect(pool.stats()).toMatchObject({ size: 0, borrowed: 0, available: 0 });
  });

  it('a destroy rejecting with undefined is still published with an error', async () => {
    const destroys = record<Destroy>(channels.poolDestroy);
    const pool = newPool(fakeFactory(() => ({ destroy: () => Promise.reject(undefined) })).factory, { name: 'undefined-destroy' });
    await (await pool.acquire()).destroy();
    await flush();
    destroys.stop();
    const mine = destroys.messages.filter((m) => m.pool === 'undefined-destroy');
    expect(mine).toHaveLength(1);
    expect(mine[0]?.error).toBeInstanceOf(Error);
  });

  it('a failing destroy of idle resources does not stop close(): every resource is attempted once', async () => {
    const attempted: number[] = [];
    const fake = fakeFactory(() => ({
      destroy: (r: Res) => {
        attempted.push(r.id);
        throw new Error(`cannot close ${r.id}`);
      },
    }));
    const pool = newPool(fake.factory, { max: 3 });
    const leases = await Promise.all([pool.acquire(), pool.acquire(), pool.acquire()]);
    for (const lease of leases) await lease.release();
    await pool.close();
    expect(attempted.sort()).toEqual([1, 2, 3]);
  });

  it('a failing destroy of an evicted idle resource leaves the pool working', async () => {
    const destroys = record<Destroy>(channels.poolDestroy);
    const fake = fakeFactory(() => ({ destroy: () => Promise.reject(new Error('gone')) }));
    const pool = newPool(fake.factory, { name: 'evict-fails', idleTimeoutMs: 20 });
    await (await pool.acquire()).release();
    await sleep(100);
    destroys.stop();
    expect(destroys.messages.filter((m) => m.pool === 'evict-fails')).toMatchObject([{ reason: 'idle', error: new Error('gone') }]);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0 });
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    await lease.release();
  });
});

describe('a create that throws', () => {
  it('synchronously: the acquire gets PoolCreateError with the error as cause, and the pool keeps working', async () => {
    let fail = true;
    const error = new TypeError('bad url');
    const fake = fakeFactory((f) => ({
      create: () => {
        if (fail) throw error;
        return f.make();
      },
    }));
    const pool = newPool(fake.factory, { name: 'sync-throw' });
    const failed = await rejectionOf(pool.acquire());
    expect(failed).toBeInstanceOf(PoolCreateError);
    expect((failed as Error).cause).toBe(error);
    expect((failed as Error).message).toContain('failed (TypeError: bad url)');
    fail = false;
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(1);
    await lease.release();
  });

  it('synchronously, from createPool itself (min > 0): createPool does not throw', async () => {
    const creates = record<{ pool: string; error?: unknown }>(channels.poolCreate);
    const error = new Error('refused at start');
    const pool = newPool<Res>(
      {
        create: () => {
          throw error;
        },
        destroy: () => {},
      },
      { name: 'throws-at-start', min: 2 },
    );
    await flush();
    creates.stop();
    expect(creates.messages.filter((m) => m.pool === 'throws-at-start').map((m) => m.error)).toEqual([error, error]);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0 });
  });

  it('something that is not an Error: it is the cause, and the message shows it', async () => {
    const pool = newPool<Res>(
      {
        create: () => {
          throw 'ECONNREFUSED';
        },
        destroy: () => {},
      },
      { name: 'string-throw' },
    );
    const failed = await rejectionOf(pool.acquire());
    expect(failed).toBeInstanceOf(PoolCreateError);
    expect((failed as Error).cause).toBe('ECONNREFUSED');
    expect((failed as Error).message).toContain('failed (ECONNREFUSED)');
  });

  it('a thenable whose then() throws is a failed create', async () => {
    const error = new Error('broken thenable');
    const pool = newPool<Res>(
      {
        create: () =>
          ({
            then() {
              throw error;
            },
          }) as unknown as PromiseLike<Res>,
        destroy: () => {},
      },
      { name: 'thenable' },
    );
    const failed = await rejectionOf(pool.acquire());
    expect(failed).toBeInstanceOf(PoolCreateError);
    expect((failed as Error).cause).toBe(error);
  });
});

describe('a validate that hangs', () => {
  it('the acquire fails at its timeout saying creating or validating takes too long; the resource is not handed out later', async () => {
    let hang = false;
    const fake = fakeFactory(() => ({ validate: () => (hang ? never() : true) }));
    const pool = newPool(fake.factory, { name: 'slow-validate' });
    await (await pool.acquire()).release();
    hang = true;
    const error = await rejectionOf(pool.acquire({ timeout: 30 }));
    expect(error).toBeInstanceOf(PoolTimeoutError);
    expect((error as Error).message).toContain('Creating or validating one is taking this long');
    expect(pool.stats()).toMatchObject({ pending: 0, borrowed: 0 });
  });
});

describe('a validate or reset that hangs past acquireTimeoutMs', () => {
  it('validate: the resource is destroyed (validate-failed) and its room serves the next acquire', async () => {
    let hang = false;
    const fake = fakeFactory(() => ({ validate: () => (hang ? never() : true) }));
    const pool = newPool(fake.factory, { name: 'hung-validate', max: 1, acquireTimeoutMs: 40 });
    await (await pool.acquire()).release();
    hang = true;
    const destroys = record<Destroy>(channels.poolDestroy);
    expect(await rejectionOf(pool.acquire({ timeout: 10 }))).toBeInstanceOf(PoolTimeoutError);
    await sleep(60); // the validation's own limit (acquireTimeoutMs) passes: resource 1 goes
    hang = false;
    destroys.stop();
    expect(fake.destroyedIds()).toEqual([1]);
    expect(destroys.messages.map((m) => m.reason)).toEqual(['validate-failed']);
    // Without the limit the hung validation would hold the pool's only room for good.
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    await lease.release();
  });

  it('reset: the resource is destroyed (reset-failed, with a cause naming the limit) and release() resolves', async () => {
    const fake = fakeFactory(() => ({ reset: () => never() }));
    const pool = newPool(fake.factory, { name: 'hung-reset', max: 1, acquireTimeoutMs: 30 });
    const destroys = record<Destroy>(channels.poolDestroy);
    const lease = await pool.acquire();
    await lease.release(); // resolves once the reset's limit passed and the resource was destroyed
    destroys.stop();
    expect(fake.destroyedIds()).toEqual([1]);
    expect(destroys.messages[0]?.reason).toBe('reset-failed');
    expect(String((destroys.messages[0]?.cause as Error).message)).toContain(
      'pool "hung-reset": reset did not finish within 30 ms (acquireTimeoutMs)',
    );
    expect(pool.stats()).toMatchObject({ borrowed: 0, size: 0 });
    const next = await pool.acquire({ timeout: 1_000 });
    expect(next.value.id).toBe(2);
    await next.release();
  });
});
