/**
 * What custodian/redis does when things fail, against the real Redis at 127.0.0.1:6379 (and closed
 * or silent ports on 127.0.0.1): connections killed server-side mid-command and while idle, Redis
 * unreachable, passwords in options and URLs, BLPOP in a scope that times out, subscribers in a
 * scope, and bad input.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { inspect as show } from 'node:util';
import { afterAll, expect, it } from 'vitest';
import { createRedis, RedisConnectionError } from '../../adapters/redis/index.js';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { currentScope, inspect, PoolCreateError, withScope, type Scope } from '../../src/index.js';
import { collectReports, collectWarnings, sleep, thrownBy, useCleanCustodian } from '../helpers.js';
import {
  adminClient,
  clientInfo,
  clients,
  closeAdaptersAfterEach,
  closeAdmin,
  closedPort,
  collectDestroys,
  describeWithServer,
  expectDestroyed,
  keyPrefix,
  kill,
  newRedis,
  nextBorrower,
  probeRedis,
  REDIS,
  settle,
} from './redis-helpers.js';

const server = await probeRedis();

useCleanCustodian();
closeAdaptersAfterEach();
afterAll(closeAdmin);

/** A TCP server on 127.0.0.1 that accepts connections and never answers; counts them. */
async function silentServer(): Promise<{ server: Server; port: number; sockets: Socket[]; close: () => Promise<void> }> {
  const sockets: Socket[] = [];
  const srv = createServer((socket) => sockets.push(socket));
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const address = srv.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    server: srv,
    port: address.port,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

/**
 * A TCP proxy to the real Redis that can be frozen: while frozen it forwards nothing either way,
 * as a network that went silent (a half-open connection) would.
 */
async function freezableProxy(): Promise<{ port: number; freeze: () => void; thaw: () => void; close: () => Promise<void> }> {
  let frozen = false;
  const held: (() => void)[] = [];
  const pairs: Socket[] = [];
  const forward = (from: Socket, to: Socket) =>
    from.on('data', (chunk: Buffer) => {
      if (frozen) held.push(() => to.write(chunk));
      else to.write(chunk);
    });
  const srv = createServer((client) => {
    const upstream = createConnection({ host: REDIS.host, port: REDIS.port });
    pairs.push(client, upstream);
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const address = srv.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    freeze: () => void (frozen = true),
    thaw: () => {
      frozen = false;
      for (const send of held.splice(0)) send();
    },
    close: async () => {
      for (const s of pairs) s.destroy();
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    },
  };
}

describeWithServer(server, `custodian/redis when things fail (Redis at ${REDIS.host}:${REDIS.port})`, () => {
  it('a dedicated connection killed mid-command: the caller gets an error, the lease is destroyed, the pool replaces it', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const list = `${keyPrefix}killed-list`;
    const id = await withScope(async () => {
      await using conn = await redis.acquire();
      const id = await conn.value.client('ID');
      // Handled at once: the kill below can reject it before the expect() further down is reached.
      const blpop = conn.value.blpop(list, 10).then(
        () => undefined,
        (error: unknown) => error,
      );
      await settle(
        async () => (await clientInfo(id))?.cmd,
        (cmd) => cmd === 'blpop',
      );
      await kill(id);
      expect(String(await blpop)).toMatch(/Connection is closed/);
      expect(conn.value.status).toBe('end'); // no reconnect: a dedicated connection stays dead
      return id;
    });
    expect(redis.stats().pool).toMatchObject({ borrowed: 0, pending: 0 });
    // Never re-sent on a new socket: an element pushed now stays in the list.
    await (await adminClient()).lpush(list, 'still here');
    await sleep(50);
    expect(await (await adminClient()).lrange(list, 0, -1)).toEqual(['still here']);
    const next = await nextBorrower(redis);
    expect(next.id).not.toBe(id);
    expect(next.pong).toBe('PONG');
    expect(redis.stats().pool).toMatchObject({ size: 1, borrowed: 0 });
    expect(await clients(redis.name)).toHaveLength(2); // the shared client and the replacement
  });

  it('a dedicated connection killed while idle is evicted before it is lent again', async () => {
    const redis = newRedis({ pool: { max: 2 } });
    const id = await redis.use((c) => c.client('ID'));
    await settle(
      async () => redis.stats().pool.available,
      (n) => n === 1,
    );
    await kill(id);
    await settle(
      async () => redis.stats().pool.size,
      (n) => n === 0,
    );
    const next = await nextBorrower(redis);
    expect(next.id).not.toBe(id);
    expect(next.pong).toBe('PONG');
  });

  it('the shared client killed server-side reconnects and keeps serving', async () => {
    const redis = newRedis();
    const first = await redis.client.client('ID');
    await kill(first);
    const again = await settle(
      () => redis.client.client('ID').catch(() => -1),
      (id) => id > 0,
    );
    expect(again).not.toBe(first);
    expect(await redis.client.ping()).toBe('PONG');
    expect(redis.stats().client).toMatchObject({ status: 'ready' });
    expect(redis.stats().client.reconnects).toBeGreaterThanOrEqual(1);
  });

  it('a reset that hangs (the network went silent) is given up after pool.acquireTimeoutMs and the connection destroyed', async () => {
    const proxy = await freezableProxy();
    try {
      const redis = newRedis({ port: proxy.port, pool: { max: 1, acquireTimeoutMs: 300 } });
      const { events, stop } = collectDestroys(redis.name);
      let id = -1;
      const t0 = performance.now();
      try {
        await withScope(async () => {
          await using conn = await redis.acquire();
          id = await conn.value.client('ID');
          await conn.value.select(3);
          proxy.freeze(); // the reset's SELECT 0 gets no answer
        });
        expect(performance.now() - t0).toBeLessThan(2_000); // the release waited for the bounded reset, not for good
        await settle(
          async () => events.length,
          (n) => n === 1,
        );
      } finally {
        stop();
      }
      expect(events).toMatchObject([{ reason: 'reset-failed' }]);
      expect(redis.stats().pool).toMatchObject({ borrowed: 0, available: 0 });
      proxy.thaw();
      const next = await redis.use(async (c) => ({ id: await c.client('ID'), db: (await clientInfo(await c.client('ID')))?.db }));
      expect(next.id).not.toBe(id);
      expect(next.db).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('Redis unreachable (a closed port): acquire() and the first shared command reject at once, naming the address', async () => {
    const port = await closedPort();
    const redis = newRedis({ port, connectTimeout: 1_000 });
    const t0 = performance.now();
    const [shared, dedicated] = await Promise.all([
      redis.client.get('k').catch((e: unknown) => e),
      redis.acquire().catch((e: unknown) => e),
    ]);
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(shared).toBeInstanceOf(RedisConnectionError);
    expect(shared).toMatchObject({ code: 'ERR_CUSTODIAN_REDIS_CONNECTION', address: `127.0.0.1:${port}` });
    expect(String((shared as Error).message)).toMatch(
      new RegExp(`GET failed: Redis at 127\\.0\\.0\\.1:${port} is unreachable \\(.*ECONNREFUSED`),
    );
    expect(dedicated).toBeInstanceOf(PoolCreateError);
    expect((dedicated as Error).message).toContain(`127.0.0.1:${port}`);
    expect((dedicated as Error).cause).toBeInstanceOf(RedisConnectionError);
    expect(redis.stats().pool).toMatchObject({ size: 0, borrowed: 0, pending: 0 });
  });

  it('Redis that accepts and never answers: both reject within the connect timeout, naming the address', async () => {
    const silent = await silentServer();
    try {
      const redis = newRedis({ port: silent.port, connectTimeout: 300 });
      const t0 = performance.now();
      const [shared, dedicated] = await Promise.all([
        redis.client.get('k').catch((e: unknown) => e),
        redis.acquire().catch((e: unknown) => e),
      ]);
      expect(performance.now() - t0).toBeLessThan(300 + 500);
      expect(shared).toBeInstanceOf(RedisConnectionError);
      expect((shared as Error).message).toContain(`127.0.0.1:${silent.port}`);
      expect((shared as Error).message).toContain('no answer to the handshake within 300 ms');
      expect(dedicated).toBeInstanceOf(PoolCreateError);
      expect((dedicated as Error).message).toContain(
        `could not open a dedicated connection to 127.0.0.1:${silent.port}: no answer within 300 ms`,
      );
      await redis.close();
    } finally {
      await silent.close();
    }
  });

  it('nothing keeps reconnecting after close(): a server that comes up on the port afterwards is never called', async () => {
    const port = await closedPort();
    const redis = newRedis({ port, pool: { min: 1 } });
    await expect(redis.client.ping()).rejects.toBeInstanceOf(RedisConnectionError);
    await redis.close();
    expect(redis.stats().client.status).toBe('end');
    const srv = createServer((socket) => {
      calls++;
      socket.destroy();
    });
    let calls = 0;
    srv.listen(port, '127.0.0.1');
    await once(srv, 'listening');
    await sleep(600); // ioredis's first retries come within 50-250 ms; the pool's refill within 100 ms
    await new Promise<void>((resolve) => srv.close(() => resolve()));
    expect(calls).toBe(0);
  });

  it('never shows the password given in the options or in the URL: errors, causes, inspect(), stats, reports', async () => {
    allowLeaks();
    const port = await closedPort();
    const texts: string[] = [];
    for (const redis of [newRedis({ port, password: 'S3cret-opt' }), newRedis({ url: `redis://:S3cret-url@127.0.0.1:${port}/0` })]) {
      const shared = await redis.client.ping().catch((e: unknown) => e);
      const dedicated = await redis.acquire().catch((e: unknown) => e);
      texts.push(show(shared, { depth: 10 }), show(dedicated, { depth: 10 }), String(shared), String(dedicated));
      texts.push(JSON.stringify(inspect()), JSON.stringify(redis.stats()));
    }
    texts.push(String(thrownBy(() => createRedis('redis://:S3cret-bad@[::1'))));
    texts.push(String(thrownBy(() => createRedis({ url: 'http://user:S3cret-http@host' }))));
    // A leak report about a connection opened with a password (this Redis has none: it warns and connects).
    const { reports, stop } = collectReports();
    const { warnings, stop: stopWarnings } = collectWarnings();
    const withPassword = newRedis({ url: `redis://default:S3cret-leak@${REDIS.host}:${REDIS.port}`, pool: { max: 1 } });
    const warn = console.warn;
    console.warn = () => {}; // ioredis: "the default user does not require a password"
    try {
      await withScope(async () => {
        const conn = await withPassword.acquire();
        await conn.value.ping();
      });
    } finally {
      console.warn = warn;
      stop();
      stopWarnings();
    }
    expect(reports).toHaveLength(1);
    texts.push(JSON.stringify(reports), ...warnings.map((w) => `${w.message}\n${w.detail ?? ''}`), JSON.stringify(inspect()));
    for (const text of texts) expect(text).not.toMatch(/S3cret/);
    expect(texts.join('\n')).toContain('***'); // the URLs were shown, with the password hidden
  });

  it('a BLPOP in a scope that times out: the connection is destroyed, and the next acquire gets one that answers PING at once', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    let id = -1;
    const outcome = await withScope(
      async () => {
        const conn = await redis.acquire();
        id = await conn.value.client('ID');
        return conn.value.blpop(`${keyPrefix}never-pushed`, 10);
      },
      { timeout: 100 },
    ).catch((e: unknown) => e);
    expect(outcome).toMatchObject({ name: 'TimeoutError' });
    expect(await expectDestroyed(redis, id)).toBeLessThan(1_000); // not the 10 s of the BLPOP
  });

  it('a BLPOP in a scope that is aborted: the same', async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const controller = new AbortController();
    let id = -1;
    const task = withScope(
      async () => {
        const conn = await redis.acquire();
        id = await conn.value.client('ID');
        return conn.value.blpop(`${keyPrefix}never-pushed`, 10);
      },
      { signal: controller.signal },
    ).catch((e: unknown) => e);
    await settle(
      async () => (id > 0 ? (await clientInfo(id))?.cmd : undefined),
      (cmd) => cmd === 'blpop',
    );
    controller.abort(new Error('client went away'));
    expect(await task).toMatchObject({ message: 'client went away' });
    const next = await redis.use(async (c) => c.client('ID'));
    expect(next).not.toBe(id);
  });

  it("a subscriber acquired in a scope hears its messages in that scope's context, and is unsubscribed at scope end", async () => {
    const redis = newRedis({ pool: { max: 1 } });
    const channel = `${keyPrefix}events`;
    const heardIn: (Scope | undefined)[] = [];
    let id = -1;
    let taskScope: Scope | undefined;
    await withScope(
      async (scope) => {
        taskScope = scope;
        const conn = await redis.acquire(); // never released: the scope's end resets it
        id = await conn.value.client('ID');
        conn.value.on('message', () => heardIn.push(currentScope()));
        await conn.value.subscribe(channel);
        await (await adminClient()).publish(channel, 'one');
        await settle(
          async () => heardIn.length,
          (n) => n === 1,
        );
        allowLeaks();
      },
      { name: 'subscriber' },
    );
    expect(heardIn).toEqual([taskScope]);
    const after = await clientInfo(id);
    expect(after === undefined || after.sub === 0).toBe(true);
    await (await adminClient()).publish(channel, 'two');
    await sleep(30);
    expect(heardIn).toHaveLength(1);
  });

  it('bad input throws a TypeError naming it, before any socket is opened', () => {
    const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const before = sockets();
    const cases: [unknown, RegExp][] = [
      [{ host: '127.0.0.1', prot: 6379 }, /createRedis\(\): unknown option 'prot'/],
      [{ pool: { max: -1 } }, /createRedis\(\): option 'pool\.max' must be a whole number above 0, got -1/],
      [{ pool: { maxx: 1 } }, /createRedis\(\): unknown option 'pool\.maxx'/],
      [{ pool: { name: 'x' } }, /option 'pool' must not set name or kind/],
      [{ url: 'redis//127.0.0.1' }, /option 'url' must be a URL like redis:\/\/host:6379\/0/],
      [{ url: 'http://127.0.0.1' }, /option 'url' must start with redis:\/\/ or rediss:\/\//],
      [{ url: 'redis://127.0.0.1/x' }, /option 'url' must end with a database number/],
      [{ url: 'redis://127.0.0.1/?db=1' }, /option 'url' must not carry query parameters/],
      ['redis://127.0.0.1:99999', /option 'url' must be a URL/],
      [{ port: 0 }, /option 'port' must be a port number from 1 to 65535, got 0/],
      [{ db: -1 }, /option 'db' must be a database number from 0, got -1/],
      [{ password: 12345 }, /option 'password' must be a string \(its value is not shown\)/],
      [{ connectTimeout: 0 }, /option 'connectTimeout' must be a whole number of milliseconds from 1/],
      [{ lazyConnect: true }, /unknown option 'lazyConnect'/],
      [undefined, /pass a redis:\/\/ URL or an options object/],
      [42, /options must be an object, got 42/],
    ];
    for (const [input, message] of cases) {
      const error = thrownBy(() => createRedis(input as never));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(message);
    }
    expect(sockets()).toBe(before);
  });
});
