/**
 * The pool suite (pool-suite.ts) against real Redis connections (ioredis). The server's view:
 * CLIENT ID, CLIENT LIST filtered by the client name each pool's connections carry, keys. The
 * state a connection keeps between borrowers is its selected database, which the factory's reset
 * puts back to 0.
 */
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { describePoolAgainst, type PoolDriver } from './pool-suite.js';
import { closeRedis, connectRedis, probeRedis, REDIS, RUN_ID, settle } from './servers.js';

const server = await probeRedis();
const keyPrefix = `custodian-it:${RUN_ID}:`;
/** Set in database 3 only: a borrower left in database 3 would see it. */
const keyInDb3 = `${keyPrefix}in-db-3`;

/** The connection of this file's own that checks on the others. */
let admin: Redis | undefined;
const adminClient = (): Redis => {
  if (admin === undefined) throw new Error('no admin connection');
  return admin;
};

/** CLIENT ID of every connection `connect` made. */
const clientIds = new WeakMap<Redis, number>();
const idOf = (client: Redis) => clientIds.get(client) ?? -1;

/** CLIENT LIST, parsed. */
const clientList = async (): Promise<{ id: number; name: string; db: number; flags: string; cmd: string }[]> => {
  const text = String(await adminClient().client('LIST'));
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const fields = new Map(
        line
          .trim()
          .split(' ')
          .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      );
      return {
        id: Number(fields.get('id')),
        name: fields.get('name') ?? '',
        db: Number(fields.get('db')),
        flags: fields.get('flags') ?? '',
        cmd: fields.get('cmd') ?? '',
      };
    });
};

/** The database the server says connection `id` has selected. */
const dbOf = async (id: number) => (await clientList()).find((c) => c.id === id)?.db;

const redis: PoolDriver<Redis> = {
  server,
  title: `pool of real Redis connections (${REDIS.host}:${REDIS.port})`,
  prefix: 'redis',
  words: { command: 'command', commands: 'commands', runsCommands: 'runs commands' },

  setUp: async () => {
    admin = await connectRedis({ connectionName: `custodian-it-${RUN_ID}-admin` });
  },
  tearDown: async () => {
    if (admin === undefined) return;
    for (const db of [0, 3]) {
      await admin.select(db);
      const keys = await admin.keys(`${keyPrefix}*`);
      if (keys.length > 0) await admin.del(...keys);
    }
    await closeRedis(admin);
  },

  /** The tag is the client name (CLIENT SETNAME), which CLIENT LIST shows. */
  connect: async (tag, port) => {
    const client = await connectRedis({ connectionName: tag, ...(port === undefined ? {} : { port }) });
    try {
      clientIds.set(client, await client.client('ID'));
    } catch (error) {
      client.disconnect();
      throw error;
    }
    return client;
  },
  close: (client) => closeRedis(client),
  drop: (client) => client.disconnect(),
  idOf,
  connectionId: (client) => client.client('ID'),
  listed: async (tag) =>
    (await clientList())
      .filter((c) => c.name === tag)
      .map((c) => c.id)
      .sort((a, b) => a - b),
  kill: async (id) => {
    expect(await adminClient().client('KILL', 'ID', id)).toBe(1);
  },
  ping: async (client) => (await client.ping()) === 'PONG',

  readWrite: async (client) => {
    const key = `${keyPrefix}leak`;
    await client.set(key, 'v1');
    expect(await client.get(key)).toBe('v1');
  },
  echo: async (client, n) => Number(await client.echo(String(n))),
  busyEcho: async (client, n) => {
    const key = `${keyPrefix}waiter-${n}`;
    await client.set(key, String(n), 'PX', 60_000);
    return Number(await client.get(key));
  },
  question: { ask: (client) => client.echo('alive'), answer: 'alive' },
  roundTrip: { run: (client) => client.ping(), answer: 'PONG' },
  startSlowCommand: async (client) => {
    const command = client.blpop(`${keyPrefix}never-pushed`, 10);
    command.catch(() => {}); // awaited by the suite; it must not count as unhandled meanwhile
    const blocked = await settle(
      async () => (await clientList()).find((c) => c.id === idOf(client)),
      (c) => c?.cmd === 'blpop' && c.flags.includes('b'),
    );
    expect(blocked).toMatchObject({ cmd: 'blpop' });
    return { command };
  },

  session: {
    title:
      'selects database 0 again on release: the next borrower of the same connection is not left in database 3; a dead one is destroyed instead',
    reset: async (client) => {
      await client.select(0);
    },
    dirty: async (client, round) => {
      await client.select(3);
      if (round !== 'handed-over') return undefined;
      await client.set(keyInDb3, 'only in db 3');
      return { db: await dbOf(idOf(client)) };
    },
    dirtyView: { db: 3 },
    seen: async (client) => ({ db: await dbOf(idOf(client)), sees: await client.exists(keyInDb3) }),
    clean: { db: 0, sees: 0 }, // back in database 0
    checkServer: async () => {
      await adminClient().select(3);
      expect(await adminClient().exists(keyInDb3)).toBe(1); // the key is there, in database 3
      await adminClient().select(0);
    },
  },
};

describePoolAgainst(redis);
