/**
 * createPool with real Redis connections (ioredis) as the pooled resource. Nothing is mocked:
 * leases, resets, validation, kills and closes are checked against what the server itself reports
 * (CLIENT ID, CLIENT LIST filtered by the client name each pool's connections carry, keys).
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createPool,
  currentScope,
  inspect,
  PoolClosedError,
  PoolCreateError,
  withScope,
  type Pool,
  type PoolFactory,
  type PoolOptions,
} from '../../src/index.js';
import { collectReports, gate, rejectionOf, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { closedPort, closeRedis, collectDestroys, connectRedis, describeWithServer, probeRedis, REDIS, RUN_ID, settle } from './servers.js';

const server = await probeRedis();
const siteOf = sitesIn(import.meta.url);

useCleanCustodian({ leaks: 'reclaim' });

/** A pool's factory with a record of what it did, so the server's view can be checked against it. */
interface Tracked {
  readonly factory: PoolFactory<Redis>;
  /** The client name every connection of this factory carries (CLIENT SETNAME), to find them in CLIENT LIST. */
  readonly clientName: string;
  /** Calls of create, failed or not. */
  creates: number;
  /** CLIENT ID of every connection create made, in order. */
  readonly ids: number[];
  /** CLIENT ID of every connection whose destroy has finished, in order. */
  readonly destroyed: number[];
}

/** Every connection any factory made, so afterAll can drop those a failed test left open. */
const opened = new Set<Redis>();
const pools: Pool<Redis>[] = [];
const clientIds = new WeakMap<Redis, number>();
let factories = 0;

/** `connect` gets the client name the connection must carry. */
function redisFactory(
  extra: Pick<PoolFactory<Redis>, 'validate' | 'reset'> = {},
  connect = (connectionName: string) => connectRedis({ connectionName }),
): Tracked {
  const clientName = `custodian-it-${RUN_ID}-${++factories}`;
  const tracked: Tracked = {
    clientName,
    creates: 0,
    ids: [],
    destroyed: [],
    factory: {
      create: async () => {
        tracked.creates++;
        const client = await connect(clientName);
        opened.add(client);
        const id = await client.client('ID');
        clientIds.set(client, id);
        tracked.ids.push(id);
        return client;
      },
      destroy: async (client) => {
        await closeRedis(client);
        opened.delete(client);
        tracked.destroyed.push(clientIds.get(client) ?? -1);
      },
      ...extra,
    },
  };
  return tracked;
}

function newPool(tracked: Tracked, options: PoolOptions = {}): Pool<Redis> {
  const pool = createPool(tracked.factory, { kind: 'redis connection', acquireTimeoutMs: 10_000, ...options });
  pools.push(pool);
  return pool;
}

const clientId = (client: Redis) => client.client('ID');
const sorted = (ids: readonly number[]) => [...ids].sort((a, b) => a - b);

describeWithServer(server, `pool of real Redis connections (${REDIS.host}:${REDIS.port})`, () => {
  let admin: Redis | undefined;
  const keyPrefix = `custodian-it:${RUN_ID}:`;

  /** The connection of this file's own that checks on the others. */
  const adminClient = (): Redis => {
    if (admin === undefined) throw new Error('no admin connection');
    return admin;
  };

  /** CLIENT LIST, parsed. */
  const clientList = async (): Promise<{ id: number; name: string; db: number; flags: string; cmd: string }[]> => {
    const text = String(await adminClient().client('LIST'));
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const fields = new Map(line.trim().split(' ').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]));
        return {
          id: Number(fields.get('id')),
          name: fields.get('name') ?? '',
          db: Number(fields.get('db')),
          flags: fields.get('flags') ?? '',
          cmd: fields.get('cmd') ?? '',
        };
      });
  };

  /** CLIENT ID of the connections the server lists under this factory's client name. */
  const onServer = async (t: Tracked): Promise<number[]> =>
    sorted((await clientList()).filter((c) => c.name === t.clientName).map((c) => c.id));

  /** Waits for the server to drop every connection of `t`; returns those it still lists. */
  const goneFromServer = (t: Tracked) => settle(() => onServer(t), (left) => left.length === 0);

  beforeAll(async () => {
    if (!server.up) return;
    admin = await connectRedis({ connectionName: `custodian-it-${RUN_ID}-admin` });
  });

  afterAll(async () => {
    await Promise.allSettled(pools.map((pool) => pool.close({ timeout: 1_000 })));
    for (const client of opened) client.disconnect();
    opened.clear();
    if (admin !== undefined) {
      for (const db of [0, 3]) {
        await admin.select(db);
        const keys = await admin.keys(`${keyPrefix}*`);
        if (keys.length > 0) await admin.del(...keys);
      }
      await closeRedis(admin);
    }
  });

  it('acquires, runs commands and releases in a scope; a leaked connection is reclaimed at scope end, reported with its line, and reused', async () => {
    const t = redisFactory();
    const pool = newPool(t, { name: `redis-leak-${RUN_ID}`, max: 2 });
    const key = `${keyPrefix}leak`;
    const { reports, stop } = collectReports();
    let first: number;
    try {
      first = await withScope(async () => {
        const lease = await pool.acquire();
        await lease.value.set(key, 'v1');
        expect(await lease.value.get(key)).toBe('v1');
        const id = await clientId(lease.value);
        await lease.release();
        return id;
      });
      expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(reports).toEqual([]);

      const leaked = await withScope(async () => {
        const lease = await pool.acquire(); // site:leak
        return clientId(lease.value);
      });
      expect(leaked).toBe(first);
      expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(reports).toMatchObject([
        {
          type: 'unreleased',
          cancelled: false,
          resources: [{ kind: 'redis connection', label: pool.name, pool: pool.name, site: siteOf('leak', 'acquire') }],
        },
      ]);

      const next = await withScope(async () => {
        await using lease = await pool.acquire();
        return clientId(lease.value);
      });
      expect(next).toBe(first);
      expect(t.ids).toEqual([first]);
      expect(await onServer(t)).toEqual([first]);
    } finally {
      stop();
    }
    await pool.close();
    expect(t.destroyed).toEqual([first]);
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('leaves exactly the pool\u2019s own connections on the server after many tasks that release, leak or throw, and none after close()', async () => {
    const t = redisFactory();
    const pool = newPool(t, { name: `redis-many-${RUN_ID}`, max: 4 });
    expect(await onServer(t)).toEqual([]); // the baseline: none under this pool's client name

    const { reports, stop } = collectReports();
    const tasks = 60;
    let outcomes: PromiseSettledResult<number>[];
    try {
      outcomes = await Promise.allSettled(
        Array.from({ length: tasks }, (_, i) =>
          withScope(async () => {
            if (i % 3 === 0) {
              const lease = await pool.acquire(); // site:many-leak
              return Number(await lease.value.echo(String(i)));
            }
            await using lease = await pool.acquire();
            const n = Number(await lease.value.echo(String(i)));
            if (i % 3 === 1) throw new Error(`task ${i} failed after its command`);
            return n;
          }),
        ),
      );
    } finally {
      stop();
    }
    outcomes.forEach((outcome, i) => {
      if (i % 3 === 1) expect(outcome).toMatchObject({ status: 'rejected', reason: { message: `task ${i} failed after its command` } });
      else expect(outcome).toEqual({ status: 'fulfilled', value: i });
    });
    const leakSite = siteOf('many-leak', 'acquire');
    const leaks = reports.filter((r) => r.type === 'unreleased' && r.resources.some((res) => res.site === leakSite));
    expect(leaks).toHaveLength(tasks / 3);

    const stats = pool.stats();
    expect(stats).toMatchObject({ borrowed: 0, pending: 0, available: stats.size });
    expect(stats.size).toBeGreaterThanOrEqual(1);
    expect(stats.size).toBeLessThanOrEqual(4);
    expect(t.creates).toBe(stats.size); // nothing was destroyed, so nothing had to be made again
    expect(t.destroyed).toEqual([]);
    expect(await onServer(t)).toEqual(sorted(t.ids));

    await pool.close();
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids));
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('selects database 0 again on release: the next borrower of the same connection is not left in database 3; a dead one is destroyed instead', async () => {
    const resets: number[] = [];
    const t = redisFactory({
      reset: async (client) => {
        resets.push(clientIds.get(client) ?? -1);
        await client.select(0);
      },
    });
    const pool = newPool(t, { name: `redis-reset-${RUN_ID}`, max: 1 });
    const key = `${keyPrefix}in-db-3`;
    const dbOf = async (id: number) => (await clientList()).find((c) => c.id === id)?.db;

    // Released while in database 3, straight to a borrower that was already waiting.
    const selected = gate();
    const letGo = gate();
    const writer = withScope(async () => {
      const lease = await pool.acquire();
      await lease.value.select(3);
      await lease.value.set(key, 'only in db 3');
      const id = await clientId(lease.value);
      const dbWhileHeld = await dbOf(id);
      selected.open();
      await letGo.promise;
      await lease.release();
      return { id, dbWhileHeld };
    });
    await selected.promise;
    const reader = withScope(async () => {
      await using lease = await pool.acquire();
      const id = await clientId(lease.value);
      return { id, db: await dbOf(id), sees: await lease.value.exists(key) };
    });
    expect(await settle(async () => pool.stats().pending, (n) => n === 1)).toBe(1);
    letGo.open();
    const written = await writer;
    const read = await reader;
    expect(written.dbWhileHeld).toBe(3);
    expect(read).toEqual({ id: written.id, db: 0, sees: 0 }); // the same connection, back in database 0
    await adminClient().select(3);
    expect(await adminClient().exists(key)).toBe(1); // the key is there, in database 3
    await adminClient().select(0);

    // Left in database 3 by a task that leaked the lease: the scope's reclaim goes through reset too.
    const leakedId = await withScope(async () => {
      const lease = await pool.acquire();
      await lease.value.select(3);
      return clientId(lease.value);
    });
    const after = await withScope(async () => {
      await using lease = await pool.acquire();
      const id = await clientId(lease.value);
      return { id, db: await dbOf(id), sees: await lease.value.exists(key) };
    });
    expect(leakedId).toBe(written.id);
    expect(after).toEqual({ id: leakedId, db: 0, sees: 0 });
    expect(resets).toEqual([written.id, written.id, written.id, written.id]);

    // Killed while borrowed and then released as if nothing happened: SELECT 0 fails, so it is destroyed, not reused.
    const destroys = collectDestroys(pool.name);
    try {
      const deadId = await withScope(async () => {
        const lease = await pool.acquire();
        const id = await clientId(lease.value);
        await lease.value.select(3);
        expect(await adminClient().client('KILL', 'ID', id)).toBe(1);
        await expect(lease.release()).resolves.toBeUndefined();
        return id;
      });
      expect(deadId).toBe(written.id);
      expect(destroys.events).toMatchObject([{ reason: 'reset-failed', cause: expect.any(Error) }]);
      expect(t.destroyed).toEqual([deadId]);
      const replacement = await withScope(async () => {
        await using lease = await pool.acquire();
        const id = await clientId(lease.value);
        return { id, db: await dbOf(id) };
      });
      expect(replacement.id).not.toBe(deadId);
      expect(replacement.db).toBe(0);
    } finally {
      destroys.stop();
    }

    await pool.close();
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('validates idle connections before handing one out: those killed server-side are destroyed and the acquirer gets a fresh one', async () => {
    const pings: number[] = [];
    const t = redisFactory({
      validate: async (client) => {
        pings.push(clientIds.get(client) ?? -1);
        return (await client.ping()) === 'PONG';
      },
    });
    const pool = newPool(t, { name: `redis-validate-${RUN_ID}`, max: 3 });
    const destroys = collectDestroys(pool.name);
    try {
      // Two idle connections, both killed (a server restart, as the pool sees it).
      const both = gate();
      let inside = 0;
      const killed = await Promise.all(
        Array.from({ length: 2 }, () =>
          withScope(async () => {
            await using lease = await pool.acquire();
            if (++inside === 2) both.open();
            await both.promise;
            return clientId(lease.value);
          }),
        ),
      );
      expect(pool.stats()).toMatchObject({ size: 2, available: 2 });
      for (const id of killed) expect(await adminClient().client('KILL', 'ID', id)).toBe(1);
      expect(await goneFromServer(t)).toEqual([]);

      const fresh = await withScope(async () => {
        await using lease = await pool.acquire();
        return { id: await clientId(lease.value), echoed: await lease.value.echo('alive') };
      });
      expect(fresh.echoed).toBe('alive');
      expect(killed).not.toContain(fresh.id);
      expect(sorted(pings)).toEqual(sorted(killed)); // each dead one pinged once; the fresh one handed out unchecked
      expect(sorted(t.ids.slice(0, 2))).toEqual(sorted(killed));
      expect(t.ids[2]).toBe(fresh.id);
      expect(t.ids).toHaveLength(3);
      expect(destroys.events).toMatchObject([{ reason: 'validate-failed' }, { reason: 'validate-failed' }]);
      expect(sorted(t.destroyed)).toEqual(sorted(killed));
      expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(await onServer(t)).toEqual([fresh.id]);

      // The fresh one, idle now, passes validation and is handed out again.
      const again = await withScope(async () => {
        await using lease = await pool.acquire();
        return clientId(lease.value);
      });
      expect(again).toBe(fresh.id);
      expect(pings.slice(2)).toEqual([fresh.id]);
    } finally {
      destroys.stop();
    }
    await pool.close();
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('replaces a borrowed connection killed mid-command once the code calls lease.destroy(err)', async () => {
    const t = redisFactory();
    const pool = newPool(t, { name: `redis-midcommand-${RUN_ID}`, max: 2, min: 1 });
    expect(await settle(async () => pool.stats().available, (n) => n === 1)).toBe(1);
    const destroys = collectDestroys(pool.name);
    try {
      const victim = await withScope(async () => {
        const lease = await pool.acquire();
        const id = await clientId(lease.value);
        const command = lease.value.blpop(`${keyPrefix}never-pushed`, 10);
        command.catch(() => {}); // awaited below; it must not count as unhandled meanwhile
        const blocked = await settle(
          async () => (await clientList()).find((c) => c.id === id),
          (c) => c?.cmd === 'blpop' && c.flags.includes('b'),
        );
        expect(blocked).toMatchObject({ cmd: 'blpop' });
        await adminClient().client('KILL', 'ID', id);
        const error = await rejectionOf(command);
        await lease.destroy(error);
        return { id, error };
      });
      expect(victim.error).toBeInstanceOf(Error);
      expect(destroys.events).toEqual([expect.objectContaining({ reason: 'destroyed', cause: victim.error })]);
      expect(t.destroyed).toEqual([victim.id]);
      expect(pool.stats().borrowed).toBe(0);

      // min: 1, so the pool makes a replacement by itself.
      const stats = await settle(async () => pool.stats(), (s) => s.available === 1);
      expect(stats).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
      expect(t.ids).toHaveLength(2);
      const next = await withScope(async () => {
        await using lease = await pool.acquire();
        return { id: await clientId(lease.value), pong: await lease.value.ping() };
      });
      expect(next.pong).toBe('PONG');
      expect(next.id).not.toBe(victim.id);
      expect(next.id).toBe(t.ids[1]);
      expect(await onServer(t)).toEqual([next.id]);
    } finally {
      destroys.stop();
    }
    await pool.close();
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('fails 50 concurrent acquires with PoolCreateError (cause: ECONNREFUSED) when the server refuses, without a retry loop', async () => {
    const port = await closedPort();
    const failures: unknown[] = [];
    const t = redisFactory({}, async (connectionName) => {
      try {
        return await connectRedis({ port, connectionName });
      } catch (error) {
        failures.push(error);
        throw error;
      }
    });
    const max = 5;
    // A timeout far beyond the test's: only a create failure can end these acquires in time.
    const pool = newPool(t, { name: `redis-refused-${RUN_ID}`, max, acquireTimeoutMs: 60_000 });
    const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => withScope(async () => void (await pool.acquire()))));
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const error = (outcome as PromiseRejectedResult).reason as PoolCreateError;
      expect(error).toBeInstanceOf(PoolCreateError);
      expect(error.code).toBe('ERR_CUSTODIAN_POOL_CREATE');
      expect(error.cause).toMatchObject({ code: 'ECONNREFUSED', port });
      expect(failures).toContain(error.cause);
    }
    expect(t.creates).toBeGreaterThanOrEqual(1);
    expect(t.creates).toBeLessThanOrEqual(max);
    expect(t.creates).toBe(failures.length);
    expect(t.ids).toEqual([]);
    const creates = t.creates;
    await sleep(200);
    expect(t.creates).toBe(creates); // no busy loop behind the scenes
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0, pending: 0 });

    // A later acquire gets an attempt of its own, and fails the same way.
    const later = await rejectionOf(withScope(() => pool.acquire()));
    expect(later).toBeInstanceOf(PoolCreateError);
    expect((later as PoolCreateError).cause).toMatchObject({ code: 'ECONNREFUSED' });
    expect(t.creates).toBeGreaterThan(creates);
    expect(t.creates).toBeLessThanOrEqual(creates + max);
    await pool.close();
  });

  it('resumes each of 30 waiting tasks in its own scope, on a pool of 2 running real commands', async () => {
    const t = redisFactory();
    const pool = newPool(t, { name: `redis-waiters-${RUN_ID}`, max: 2 });
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        withScope(async (scope) => {
          const lease = await pool.acquire();
          const ownAfterAcquire = currentScope() === scope;
          const heldByOwnScope = inspect({ maxScopes: 1_000 }).scopes.oldest.find((s) => s.id === scope.id)?.leases;
          const key = `${keyPrefix}waiter-${i}`;
          await lease.value.set(key, String(i), 'PX', 60_000);
          const echoed = Number(await lease.value.get(key));
          const ownAfterCommand = currentScope() === scope;
          const id = await clientId(lease.value);
          await lease.release();
          return { i, ownAfterAcquire, heldByOwnScope, echoed, ownAfterCommand, id };
        }),
      ),
    );
    for (const r of results) {
      expect(r).toEqual({ i: r.i, ownAfterAcquire: true, heldByOwnScope: 1, echoed: r.i, ownAfterCommand: true, id: r.id });
    }
    expect(new Set(results.map((r) => r.id)).size).toBeLessThanOrEqual(2);
    expect(t.ids.length).toBeLessThanOrEqual(2);
    expect(pool.stats()).toMatchObject({ borrowed: 0, pending: 0 });
    await pool.close();
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('close() waits for a borrowed connection, then closes every connection server-side before it resolves', async () => {
    const t = redisFactory();
    const pool = newPool(t, { name: `redis-close-${RUN_ID}`, max: 4 });
    // Four at once, so that four connections exist.
    const allIn = gate();
    let inside = 0;
    await Promise.all(
      Array.from({ length: 4 }, () =>
        withScope(async () => {
          await using lease = await pool.acquire();
          if (++inside === 4) allIn.open();
          await allIn.promise;
          await lease.value.ping();
        }),
      ),
    );
    expect(t.ids).toHaveLength(4);
    expect(await onServer(t)).toEqual(sorted(t.ids));

    const holding = gate();
    const letGo = gate();
    const holder = withScope(async () => {
      const lease = await pool.acquire();
      holding.open();
      await letGo.promise;
      const pong = await lease.value.ping();
      await lease.release();
      return pong;
    });
    await holding.promise;
    const closing = pool.close();
    expect(await rejectionOf(withScope(() => pool.acquire()))).toBeInstanceOf(PoolClosedError);
    letGo.open();
    expect(await holder).toBe('PONG'); // the borrowed connection still worked while close() waited
    await closing;
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids)); // every destroy finished before close() resolved
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('close() while connections are still being created fails the waiting acquires and closes those connections once made', async () => {
    const connected = gate();
    const proceed = gate();
    let connecting = 0;
    const t = redisFactory({}, async (connectionName) => {
      const client = await connectRedis({ connectionName }); // connected server-side; the pool does not have it yet
      if (++connecting === 2) connected.open();
      await proceed.promise;
      return client;
    });
    const pool = newPool(t, { name: `redis-close-creating-${RUN_ID}`, max: 2 });
    const acquires = Array.from({ length: 2 }, () => rejectionOf(withScope(() => pool.acquire())));
    await connected.promise;
    expect(await onServer(t)).toHaveLength(2);
    expect(pool.stats()).toMatchObject({ size: 2, pending: 2 });
    const closing = pool.close();
    for (const error of await Promise.all(acquires)) expect(error).toBeInstanceOf(PoolClosedError);
    proceed.open();
    await closing;
    expect(t.ids).toHaveLength(2);
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids));
    expect(await goneFromServer(t)).toEqual([]);
  });

  it('counts nothing in stats() once close() destroyed the idle connections', async () => {
    const t = redisFactory();
    const pool = newPool(t, { name: `redis-closed-stats-${RUN_ID}`, max: 2 });
    const both = gate();
    let inside = 0;
    await Promise.all(
      Array.from({ length: 2 }, () =>
        withScope(async () => {
          await using lease = await pool.acquire();
          if (++inside === 2) both.open();
          await both.promise;
          await lease.value.ping();
        }),
      ),
    );
    expect(pool.stats()).toMatchObject({ size: 2, available: 2, borrowed: 0, pending: 0 });
    await pool.close();
    expect(sorted(t.destroyed)).toEqual(sorted(t.ids));
    expect(await goneFromServer(t)).toEqual([]);
    // Documented: size === available + borrowed when nothing is being created; all three are 0 now.
    expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0, pending: 0 });
  });
});
