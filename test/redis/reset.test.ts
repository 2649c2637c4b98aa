/**
 * Giving a dedicated connection back resets it, or destroys it when its state cannot be restored
 * or is unknown. Each test proves it with CLIENT ID on the real Redis: with a pool of one, the next
 * borrower gets the same connection (same id) and the server shows it clean, or a different one.
 */
import fc from 'fast-check';
import type { Redis } from 'ioredis';
import { afterAll, expect, it } from 'vitest';
import { withScope } from '../../src/index.js';
import { PROPERTY_RUNS, sleep, useCleanCustodian } from '../helpers.js';
import {
  adminClient,
  clientInfo,
  closeAdaptersAfterEach,
  closeAdmin,
  describeWithServer,
  expectDestroyed,
  keyPrefix,
  newRedis,
  nextBorrower,
  probeRedis,
  REDIS,
  RUN_ID,
  settle,
} from './redis-helpers.js';

const server = await probeRedis();

useCleanCustodian();
closeAdaptersAfterEach();
afterAll(closeAdmin);

/** Borrows the pool's connection, lets `dirty` change it, gives it back; returns its CLIENT ID. */
async function dirtyAndReturn(redis: ReturnType<typeof newRedis>, dirty: (conn: Redis, id: number) => Promise<void>): Promise<number> {
  return withScope(async () => {
    await using conn = await redis.acquire();
    const id = await conn.value.client('ID');
    await dirty(conn.value, id);
    return id;
  });
}

/** The id the next borrower gets, and what the server says of that connection. */
describeWithServer(server, `giving a dedicated connection back (Redis at ${REDIS.host}:${REDIS.port})`, () => {
  it('discards an open MULTI: the next borrower of the same connection is in no transaction, and nothing queued ran', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const key = `${keyPrefix}multi`;
    const id = await dirtyAndReturn(redis, async (conn) => {
      expect(await conn.call('MULTI')).toBe('OK');
      expect(await conn.call('SET', key, 'queued')).toBe('QUEUED');
    });
    expect(await clientInfo(id)).toMatchObject({ multi: -1 });
    await redis.use(async (conn) => {
      expect(await conn.client('ID')).toBe(id);
      await expect(conn.call('EXEC')).rejects.toThrow(/EXEC without MULTI/);
    });
    expect(await (await adminClient()).exists(key)).toBe(0);
  });

  it('clears WATCH: a key changed after the connection came back does not abort the next borrower\u2019s transaction', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const key = `${keyPrefix}watched`;
    const id = await dirtyAndReturn(redis, async (conn) => {
      expect(await conn.watch(key)).toBe('OK');
    });
    await (await adminClient()).set(key, 'changed by someone else');
    await redis.use(async (conn) => {
      expect(await conn.client('ID')).toBe(id);
      const result = await conn.multi().set(`${keyPrefix}tx`, '1').exec();
      expect(result).toEqual([[null, 'OK']]); // null would mean: aborted by the stale WATCH
    });
  });

  it('leaves every subscription (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE) and drops the borrower\u2019s message handlers', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const channel = `${keyPrefix}ch`;
    const heard: string[] = [];
    const id = await dirtyAndReturn(redis, async (conn) => {
      conn.on('message', (_ch: string, message: string) => heard.push(message));
      await conn.subscribe(channel);
      await conn.psubscribe(`${keyPrefix}p*`);
      await conn.ssubscribe(`${keyPrefix}shard`);
      expect(await clientInfo(await conn.client('ID'))).toMatchObject({ sub: 1, psub: 1, ssub: 1 });
      await (await adminClient()).publish(channel, 'while borrowed');
      await settle(
        async () => heard.length,
        (n) => n === 1,
      );
    });
    expect(await clientInfo(id)).toMatchObject({ sub: 0, psub: 0, ssub: 0 });
    await redis.use(async (conn) => {
      expect(await conn.client('ID')).toBe(id);
      expect(conn.listenerCount('message')).toBe(0);
      await conn.subscribe(channel); // the next borrower's own subscription
      await (await adminClient()).publish(channel, 'to the next borrower');
      await sleep(50);
    });
    expect(heard).toEqual(['while borrowed']);
  });

  it('selects the configured database again', async () => {
    const redis = newRedis({ pool: { max: 1 }, db: 2 });
    const id = await dirtyAndReturn(redis, async (conn) => {
      await conn.select(5);
      expect(await clientInfo(await conn.client('ID'))).toMatchObject({ db: 5 });
    });
    expect(await clientInfo(id)).toMatchObject({ db: 2 });
    expect(await nextBorrower(redis)).toEqual({ id, pong: 'PONG' });
  });

  it('selects the configured database again after a SELECT of it queued in a MULTI that never ran (found by the property below)', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const id = await dirtyAndReturn(redis, async (conn) => {
      await conn.call('SELECT', '3');
      await conn.call('MULTI');
      await conn.call('SELECT', '0'); // queued: the database is still 3
    });
    expect(await clientInfo(id)).toMatchObject({ db: 0, multi: -1 });
    expect(await nextBorrower(redis)).toEqual({ id, pong: 'PONG' });
  });

  it('sends nothing for a connection nobody dirtied: it is lent again as it is', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const id = await dirtyAndReturn(redis, async (conn) => {
      await conn.set(`${keyPrefix}plain`, '1');
      await conn.select(0); // the configured database: nothing to undo
    });
    expect(await nextBorrower(redis)).toEqual({ id, pong: 'PONG' });
  });

  it('waits for the replies to ordinary commands still in flight, then lends the same connection again', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const key = `${keyPrefix}in-flight`;
    let id = -1;
    const answer = await withScope(async () => {
      await using conn = await redis.acquire();
      id = await conn.value.client('ID');
      void conn.value.set(key, 'x');
      return conn.value.get(key); // still in flight when `await using` gives the connection back
    });
    expect(answer).toBe('x');
    expect(await nextBorrower(redis)).toEqual({ id, pong: 'PONG' });
  });

  it('destroys a connection that sent CLIENT REPLY OFF: the next borrower gets another, which answers', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const id = await dirtyAndReturn(redis, async (conn) => {
      void conn.client('REPLY', 'OFF').catch(() => {}); // the server never answers it
    });
    await expectDestroyed(redis, id);
  });

  it('destroys a connection that sent CLIENT REPLY SKIP', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const id = await dirtyAndReturn(redis, async (conn) => {
      void conn.client('REPLY', 'SKIP').catch(() => {});
    });
    await expectDestroyed(redis, id);
  });

  it('destroys a connection that entered MONITOR', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const id = await dirtyAndReturn(redis, async (conn, me) => {
      void conn.call('MONITOR').catch(() => {});
      await settle(
        async () => (await clientInfo(me))?.flags ?? '',
        (flags) => flags.includes('O'),
      );
    });
    await expectDestroyed(redis, id);
  });

  it('destroys a connection given back while a BLPOP is still blocked on it', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    let blpop: Promise<unknown> | undefined;
    const id = await dirtyAndReturn(redis, async (conn, me) => {
      blpop = conn.blpop(`${keyPrefix}never`, 10);
      blpop.catch(() => {});
      await settle(
        async () => (await clientInfo(me))?.cmd,
        (cmd) => cmd === 'blpop',
      );
    });
    await expectDestroyed(redis, id);
    await expect(blpop).rejects.toThrow(/Connection is closed/);
  });

  it('destroys a connection whose command timed out client-side (commandTimeout), even once the late reply came', async () => {
    const redis = newRedis({ pool: { max: 1 }, commandTimeout: 50 });
    const id = await dirtyAndReturn(redis, async (conn) => {
      await expect(conn.blpop(`${keyPrefix}never`, 0.2)).rejects.toThrow(/Command timed out/);
      await sleep(400); // BLPOP's own timeout passed: the reply came, nothing is in flight any more
    });
    await expectDestroyed(redis, id);
  });

  it('destroys a connection whose blocking command ioredis gave up on (blockingTimeout) while the server still blocks it', async () => {
    const redis = newRedis({ pool: { max: 1 }, blockingTimeout: 50 });
    const id = await dirtyAndReturn(redis, async (conn) => {
      expect(await conn.blpop(`${keyPrefix}never`, 0)).toBeNull(); // resolved by ioredis's timer, not by Redis
    });
    await expectDestroyed(redis, id);
  });

  it('destroys a connection whose reset fails (a user not allowed UNWATCH)', async () => {
    const admin = await adminClient();
    const user = `crt-${RUN_ID}-no-unwatch`;
    await admin.call('ACL', 'SETUSER', user, 'on', '>pw-for-test', '~*', '&*', '+@all', '-unwatch');
    try {
      const redis = newRedis({ pool: { max: 1 }, username: user, password: 'pw-for-test' });
      const id = await dirtyAndReturn(redis, async (conn) => {
        await conn.watch(`${keyPrefix}w`);
      });
      await expectDestroyed(redis, id);
    } finally {
      await admin.call('ACL', 'DELUSER', user);
    }
  });

  it('destroys a connection that is not ready when it comes back (its socket closed)', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const id = await dirtyAndReturn(redis, async (conn) => {
      conn.disconnect();
    });
    await expectDestroyed(redis, id);
  });

  it('property: whatever a borrower does, the next borrower sees a clean connection or a different one', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const key = `${keyPrefix}prop`;
    const admin = await adminClient();
    type Step =
      { op: 'multi' } | { op: 'queue' } | { op: 'watch' } | { op: 'sub' } | { op: 'psub' } | { op: 'select'; db: number } | { op: 'exec' };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.constant({ op: 'multi' } as const),
      fc.constant({ op: 'queue' } as const),
      fc.constant({ op: 'watch' } as const),
      fc.constant({ op: 'sub' } as const),
      fc.constant({ op: 'psub' } as const),
      fc.constant({ op: 'exec' } as const),
      fc.integer({ min: 0, max: 3 }).map((db) => ({ op: 'select', db }) as const),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 6 }), async (steps) => {
        const id = await dirtyAndReturn(redis, async (conn) => {
          let inMulti = false;
          for (const s of steps) {
            // ioredis 6 throws in its reply parser on a SUBSCRIBE queued inside MULTI: not a state a borrower can reach.
            if (inMulti && (s.op === 'sub' || s.op === 'psub')) continue;
            if (s.op === 'multi') inMulti = true;
            if (s.op === 'exec') inMulti = false;
            // Commands a server refuses here (MULTI inside MULTI, EXEC without MULTI) are part of the test.
            if (s.op === 'multi') await conn.call('MULTI').catch(() => {});
            else if (s.op === 'queue') await conn.call('SET', key, 'dirty').catch(() => {});
            else if (s.op === 'watch') await conn.call('WATCH', `${key}-w`).catch(() => {});
            else if (s.op === 'sub') await conn.call('SUBSCRIBE', `${keyPrefix}prop-ch`).catch(() => {});
            else if (s.op === 'psub') await conn.call('PSUBSCRIBE', `${keyPrefix}prop-*`).catch(() => {});
            else if (s.op === 'exec') await conn.call('EXEC').catch(() => {});
            else await conn.call('SELECT', String(s.db)).catch(() => {});
          }
        });
        await admin.set(`${key}-w`, String(Math.random())); // would abort a transaction still watching
        await redis.use(async (conn) => {
          const now = await conn.client('ID');
          if (now !== id) return; // destroyed: a different connection is clean by being new
          expect(await clientInfo(id)).toMatchObject({ multi: -1, sub: 0, psub: 0, db: 0 });
          expect(await conn.multi().get(`${key}-w`).exec()).not.toBeNull();
        });
        await admin.del(key);
      }),
      { numRuns: Math.min(PROPERTY_RUNS, 60) },
    );
  });
});
