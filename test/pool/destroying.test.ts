/**
 * `max` bounds what is live on the server: a resource counts against it until its `destroy` has
 * finished (or outlived `destroyTimeoutMs`, which is reported). A task cancelled mid-query must not
 * free its slot while the connection it held is still being torn down: during a database slowdown
 * that is how a pool of 10 ends up holding 40 connections on the server.
 */
import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { channels, withScope } from '../../src/index.js';
import { collectWarnings, flush, gate, never, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, record, settledFlag, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

/** A factory whose destroys each wait for the test to finish them; `live()` is what the "server" still holds. */
function slowDestroys() {
  const pending: (() => void)[] = [];
  let live = 0;
  let peak = 0;
  const fake = fakeFactory((f) => ({
    create: () => {
      peak = Math.max(peak, ++live);
      return f.make();
    },
    destroy: (resource: Res) =>
      new Promise<void>((resolve) => {
        pending.push(() => {
          live--;
          f.destroyed.push(resource);
          resolve();
        });
      }),
  }));
  return { fake, pending, live: () => live, peak: () => peak };
}

describe('a resource being destroyed counts against max', () => {
  it('until its destroy finishes: stats() shows it as destroying, and a waiter gets a new one only then', async () => {
    const slow = slowDestroys();
    const pool = newPool(slow.fake.factory, { max: 2, acquireTimeoutMs: 10_000 });
    const [a, b] = await Promise.all([pool.acquire(), pool.acquire()]);
    void a?.destroy(new Error('broken'));
    void b?.destroy(new Error('broken'));
    expect(pool.stats()).toMatchObject({ size: 2, borrowed: 0, available: 0, destroying: 2 });
    const waiting = pool.acquire();
    const served = settledFlag(waiting);
    await sleep(20);
    expect(served.settled).toBe(false); // the server still holds 2: nothing new may be made
    expect(slow.fake.createCalls()).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 2, destroying: 2, pending: 1 });
    slow.pending.shift()?.();
    const lease = await waiting;
    expect(lease.value.id).toBe(3);
    expect(slow.peak()).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 2, borrowed: 1, destroying: 1 });
    slow.pending.shift()?.();
    await lease.release();
  });

  it('when tasks are cancelled mid-query, wave after wave: the server never holds more than max', async () => {
    allowLeaks();
    const slow = slowDestroys();
    const pool = newPool(slow.fake.factory, { max: 10, acquireTimeoutMs: 10_000 });
    // 4 waves of 10 requests, each running a "query" that outlives its 20 ms timeout; a connection
    // cut off mid-query takes a while to be torn down (the destroys finish only later).
    const waves: Promise<unknown>[] = [];
    for (let wave = 0; wave < 4; wave++) {
      for (let i = 0; i < 10; i++) {
        waves.push(
          withScope(
            async (scope) => {
              const lease = await pool.acquire();
              await new Promise((resolve) => scope.signal.addEventListener('abort', resolve)); // a query cut off
              void lease;
              await never();
            },
            { timeout: 20 },
          ).catch((error: unknown) => error),
        );
      }
      await sleep(30);
      expect(slow.live()).toBeLessThanOrEqual(10);
      expect(pool.stats().size).toBeLessThanOrEqual(10);
    }
    expect(slow.peak()).toBe(10);
    // The destroys finish: the waiting requests get connections, still never more than 10 at once.
    while (slow.pending.length > 0 || pool.stats().pending > 0) {
      slow.pending.shift()?.();
      await sleep(1);
      expect(slow.live()).toBeLessThanOrEqual(10);
    }
    await Promise.all(waves);
    expect(slow.peak()).toBe(10);
  });

  it('until destroyTimeoutMs: a destroy that hangs is reported, and its room is given back', async () => {
    const destroys = record<{ pool: string; timedOut?: boolean }>(channels.poolDestroy);
    const { warnings, stop } = collectWarnings();
    const fake = fakeFactory(() => ({ destroy: () => never() }));
    const pool = newPool(fake.factory, { name: 'hung-destroy', max: 1, destroyTimeoutMs: 30 });
    const lease = await pool.acquire();
    void lease.destroy(new Error('broken'));
    const waiting = pool.acquire();
    expect(pool.stats()).toMatchObject({ destroying: 1, pending: 1 });
    const next = await waiting;
    await flush(); // warnings are emitted on the next tick
    stop();
    destroys.stop();
    expect(next.value.id).toBe(2);
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1, destroying: 0 });
    expect(destroys.messages.filter((m) => m.pool === 'hung-destroy')).toMatchObject([{ reason: 'destroyed', timedOut: true }]);
    const warning = warnings.find((w) => w.code === 'CUSTODIAN_POOL_DESTROY_TIMEOUT');
    expect(warning?.message).toBe(
      'pool "hung-destroy": destroying a pooled resource did not finish within 30 ms (destroyTimeoutMs); it no longer counts against max, but the server may still hold it. A server that stopped answering? Look at the factory\'s destroy.',
    );
    await next.release();
  });

  it('a timed-out acquire says the destroys are what it waited for', async () => {
    const slow = slowDestroys();
    const pool = newPool(slow.fake.factory, { name: 'draining', max: 1 });
    const lease = await pool.acquire();
    void lease.destroy(new Error('broken'));
    const error = await pool.acquire({ timeout: 20 }).catch((e: unknown) => e as Error);
    expect((error as Error).message).toMatch(
      /0 of 1 borrowed, 0 idle, 0 more waiting, 1 still being destroyed\. The ones being destroyed still count against max until their destroy finishes \(destroyTimeoutMs is 10000\): is the server slow to let go of them\?$/,
    );
    slow.pending.shift()?.();
  });
});

describe('pool.evict(resource)', () => {
  it('destroys an idle resource at once (a connection that died in the pool), and min is refilled', async () => {
    const destroys = record<{ pool: string; reason: string }>(channels.poolDestroy);
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { name: 'evicting', min: 2, max: 4, idleTimeoutMs: 0 });
    await sleep(5);
    expect(pool.stats()).toMatchObject({ size: 2, available: 2 });
    const dead = fake.created[0] as Res;
    expect(pool.evict(dead)).toBe(true);
    expect(fake.destroyed).toEqual([dead]);
    await sleep(5);
    destroys.stop();
    expect(pool.stats()).toMatchObject({ size: 2, available: 2 });
    expect(fake.createCalls()).toBe(3);
    expect(destroys.messages.filter((m) => m.pool === 'evicting').map((m) => m.reason)).toEqual(['evicted']);
    const leases = await Promise.all([pool.acquire(), pool.acquire()]);
    expect(leases.map((l) => l.value)).not.toContain(dead);
    for (const l of leases) await l.release();
  });

  it('a borrowed resource is destroyed when its lease ends, never lent again', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    const lease = await pool.acquire();
    expect(pool.evict(lease.value)).toBe(true);
    expect(fake.destroyed).toEqual([]); // its holder may still be finding out
    await lease.release();
    expect(fake.destroyedIds()).toEqual([1]);
    const next = await pool.acquire();
    expect(next.value.id).toBe(2);
    await next.release();
  });

  it('a resource evicted while its reset runs is destroyed, not put back', async () => {
    const reset = gate();
    const fake = fakeFactory(() => ({ reset: () => reset.promise }));
    const pool = newPool(fake.factory, { max: 1 });
    const lease = await pool.acquire();
    const value = lease.value;
    const releasing = lease.release();
    expect(pool.evict(value)).toBe(true);
    reset.open();
    await releasing;
    expect(fake.destroyed).toEqual([value]);
    expect(pool.stats()).toMatchObject({ size: 0, available: 0 });
  });

  it('answers false for a resource the pool does not hold, and for one evicted already', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { max: 1 });
    expect(pool.evict({ id: 99 })).toBe(false);
    const lease = await pool.acquire();
    const value = lease.value;
    await lease.release();
    expect(pool.evict(value)).toBe(true);
    expect(pool.evict(value)).toBe(false);
  });
});
