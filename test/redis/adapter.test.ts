/**
 * custodian/redis against the real Redis at 127.0.0.1:6379: the shared client, dedicated
 * connections (acquire, use, stats, inspect, close), leak reports at the caller's line, connections
 * opened in the neutral async context, and the seed leak (a Map of per-task connections).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { inspect, withScope } from '../../src/index.js';
import { collectReports, sitesIn, useCleanCustodian } from '../helpers.js';
import {
  clientInfo,
  clients,
  closeAdaptersAfterEach,
  closeAdmin,
  describeWithServer,
  keyPrefix,
  newRedis,
  probeRedis,
  REDIS,
  settle,
} from './redis-helpers.js';

const server = await probeRedis();
const siteOf = sitesIn(import.meta.url);

useCleanCustodian();
closeAdaptersAfterEach();
afterAll(closeAdmin);

describeWithServer(server, `custodian/redis against Redis at ${REDIS.host}:${REDIS.port}`, () => {
  it('serves ordinary commands on one shared connection, many in flight at once', async () => {
    const redis = newRedis();
    const key = `${keyPrefix}shared`;
    await redis.client.set(key, 'v');
    const answers = await Promise.all(Array.from({ length: 50 }, () => redis.client.get(key)));
    expect(answers).toEqual(Array.from({ length: 50 }, () => 'v'));
    const name = redis.stats().client;
    expect(name).toMatchObject({ status: 'ready', address: `${REDIS.host}:${REDIS.port}`, db: 0, inFlight: 0, queued: 0, lastError: null });
    // The shared client is one connection; no dedicated one was opened.
    expect(await clients(redis.name)).toHaveLength(1);
    expect(redis.stats().pool).toMatchObject({ size: 0, borrowed: 0 });
    await redis.client.del(key);
  });

  it('lends a dedicated connection: a connection of its own, given back by release() and reused', async () => {
    const redis = newRedis({ pool: { max: 2 } });
    const sharedId = await redis.client.client('ID');
    const first = await withScope(async () => {
      await using conn = await redis.acquire();
      expect(conn.kind).toBe('redis connection');
      expect(conn.label).toBe(redis.name);
      expect(redis.stats().pool).toMatchObject({ size: 1, borrowed: 1 });
      return conn.value.client('ID');
    });
    expect(first).not.toBe(sharedId);
    await settle(
      async () => redis.stats().pool,
      (p) => p.available === 1,
    );
    expect(redis.stats().pool).toMatchObject({ size: 1, available: 1, borrowed: 0 });
    const again = await redis.use((conn) => conn.client('ID'));
    expect(again).toBe(first);
    expect(await clients(redis.name)).toHaveLength(2); // the shared client and one dedicated connection
  });

  it('use() gives the connection back when fn throws, and rethrows', async () => {
    const redis = newRedis();
    const error = await redis.use(() => Promise.reject(new Error('task failed'))).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'task failed' });
    expect(redis.stats().pool).toMatchObject({ borrowed: 0, available: 1 });
    await expect(redis.use(undefined as never)).rejects.toThrow(/redis.use\(\): fn must be a function, got undefined/);
  });

  it('shows the shared client and the pool in inspect(), and neither after close()', async () => {
    const redis = newRedis({ password: undefined });
    await redis.client.ping();
    await redis.use((c) => c.ping());
    const snap = inspect();
    expect(snap.adapters).toContainEqual(
      expect.objectContaining({ name: redis.name, kind: 'redis client', status: 'ready', address: `${REDIS.host}:${REDIS.port}` }),
    );
    expect(snap.pools).toContainEqual(expect.objectContaining({ name: redis.name, size: 1, available: 1, borrowed: 0 }));
    await redis.close();
    const after = inspect();
    expect(after.adapters.find((a) => a.name === redis.name)).toBeUndefined();
    expect(after.pools.find((p) => p.name === redis.name)).toBeUndefined();
  });

  it('close() closes the shared client and every dedicated connection on the server; commands fail afterwards', async () => {
    const redis = newRedis({ pool: { max: 3 } });
    await redis.client.ping();
    await Promise.all([1, 2, 3].map(() => redis.use((c) => c.ping())));
    expect(await clients(redis.name)).toHaveLength(4);
    await redis.close();
    expect(redis.close()).toBe(redis.close()); // the same promise
    expect(redis.stats().client.status).toBe('end');
    expect(
      await settle(
        () => clients(redis.name),
        (c) => c.length === 0,
      ),
    ).toEqual([]);
    await expect(redis.client.ping()).rejects.toThrow();
    await expect(redis.acquire()).rejects.toMatchObject({ name: 'PoolClosedError' });
  });

  it('reclaims a dedicated connection the task never gave back, reporting the line that called acquire()', async () => {
    allowLeaks();
    const redis = newRedis({ pool: { max: 1 } });
    const { reports, stop } = collectReports();
    try {
      await withScope(async () => {
        const conn = await redis.acquire(); // site:leak
        await conn.value.ping();
      });
    } finally {
      stop();
    }
    expect(reports[0]).toMatchObject({
      type: 'unreleased',
      resources: [{ kind: 'redis connection', label: redis.name, pool: redis.name, site: siteOf('leak', 'acquire') }],
    });
    expect(redis.stats().pool).toMatchObject({ borrowed: 0 });
  });

  it('reports the line that called use() for a connection use() still held when its scope was abandoned', async () => {
    allowLeaks();
    const redis = newRedis({ pool: { max: 1 } });
    const { reports, stop } = collectReports();
    let release = () => {};
    try {
      const task = withScope(
        async () => {
          void redis.use(() => new Promise<void>((resolve) => (release = resolve))); // site:use
          await new Promise((resolve) => setTimeout(resolve, 20));
        },
        { name: 'abandons use()' },
      );
      await task;
    } finally {
      stop();
      release();
    }
    expect(reports[0]).toMatchObject({ type: 'unreleased', resources: [{ kind: 'redis connection', site: siteOf('use', 'use') }] });
    await settle(
      async () => redis.stats().pool.borrowed,
      (n) => n === 0,
    );
  });

  it("opens connections in the neutral async context: a connection's events never see the request that opened it", async () => {
    const requestId = new AsyncLocalStorage<string>();
    const seen: (string | undefined)[] = [];
    const redis = requestId.run('request-1', () => newRedis());
    const conn = await requestId.run('request-2', () => redis.acquire());
    conn.value.on('close', () => seen.push(requestId.getStore()));
    redis.client.on('close', () => seen.push(requestId.getStore()));
    await conn.value.ping();
    await conn.destroy(new Error('done with it'));
    await redis.close();
    expect(seen).toEqual([undefined, undefined]);
  });

  it('the seed leak: 1,000 tasks keep their connection in a Map and never release it; a pool of 10 never runs dry', async () => {
    allowLeaks();
    const redis = newRedis({ pool: { max: 10, acquireTimeoutMs: 5_000 } });
    const held = new Map<number, Redis>(); // the seed: module-level, keyed by task id, never cleared
    const { reports, stop } = collectReports();
    let answers: string[];
    try {
      answers = await Promise.all(
        Array.from({ length: 1_000 }, (_, task) =>
          withScope(async () => {
            const lease = await redis.acquire(); // site:seed
            held.set(task, lease.value);
            return lease.value.echo(String(task));
          }),
        ),
      );
    } finally {
      stop();
    }
    expect(answers).toEqual(Array.from({ length: 1_000 }, (_, i) => String(i)));
    const unreleased = reports.filter((r) => r.type === 'unreleased');
    expect(unreleased).toHaveLength(1_000);
    expect(unreleased.every((r) => r.resources.every((res) => res.site === siteOf('seed', 'acquire')))).toBe(true);
    const stats = redis.stats().pool;
    expect(stats).toMatchObject({ borrowed: 0, pending: 0 });
    expect(stats.size).toBeLessThanOrEqual(10);
    expect((await clients(redis.name)).length).toBeLessThanOrEqual(11); // 10 dedicated and the shared client
    // The Map still holds the clients, but every one is back in the pool (or closed): none of them carries a task's state.
    const someId = await redis.use((c) => c.client('ID'));
    expect(await clientInfo(someId)).toMatchObject({ multi: -1, sub: 0, db: 0 });
    held.clear();
  });
});
