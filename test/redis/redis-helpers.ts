/**
 * What the custodian/redis tests share: the server probe, an admin connection of their own that
 * looks at the others through CLIENT LIST / CLIENT KILL, unique names and key prefixes per run, and
 * adapters that are closed after each test.
 */
import type { Redis } from 'ioredis';
import { afterEach, expect } from 'vitest';
import { createRedis, type RedisAdapter, type RedisAdapterOptions } from '../../adapters/redis/index.js';
import { closeRedis, connectRedis, REDIS, RUN_ID, settle } from '../integration/servers.js';

export { closedPort, collectDestroys, describeWithServer, probeRedis, REDIS, RUN_ID, settle } from '../integration/servers.js';

/** Keys of this run: nothing another engineer's run uses. */
export const keyPrefix = `custodian-redis-test:${RUN_ID}:`;

let adapters = 0;
const open = new Set<RedisAdapter>();

/** A fresh adapter named uniquely (its connections carry the name, so CLIENT LIST finds them); closed after the test. */
export function newRedis(options: Omit<RedisAdapterOptions, 'host' | 'port'> & { port?: number } = {}): RedisAdapter {
  const name = `crt-${RUN_ID}-${++adapters}`;
  const redis = createRedis({ ...REDIS, name, connectionName: name, connectTimeout: 2_000, ...options });
  open.add(redis);
  return redis;
}

/** Closes every adapter the test made (a test that closed its own gets the same promise back). */
export function closeAdaptersAfterEach(): void {
  afterEach(async () => {
    const all = [...open];
    open.clear();
    await Promise.all(all.map((r) => r.close({ timeout: 2_000 })));
  });
}

let admin: Redis | undefined;

/** This file's own connection to look at and kill the others. */
export async function adminClient(): Promise<Redis> {
  admin ??= await connectRedis({ connectionName: `crt-${RUN_ID}-admin` });
  return admin;
}

/** Closes the admin connection and deletes the run's keys. */
export async function closeAdmin(): Promise<void> {
  if (admin === undefined) return;
  const keys = await admin.keys(`${keyPrefix}*`);
  if (keys.length > 0) await admin.del(...keys);
  await closeRedis(admin);
  admin = undefined;
}

/** One line of CLIENT LIST. */
export interface ClientInfo {
  readonly id: number;
  readonly name: string;
  readonly db: number;
  readonly flags: string;
  readonly cmd: string;
  readonly sub: number;
  readonly psub: number;
  readonly ssub: number;
  readonly multi: number;
}

/** CLIENT LIST, parsed; only the connections named `name` when given. */
export async function clients(name?: string): Promise<ClientInfo[]> {
  const text = String(await (await adminClient()).client('LIST'));
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const f = new Map(
        line
          .trim()
          .split(' ')
          .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      );
      const n = (key: string) => Number(f.get(key) ?? NaN);
      return {
        id: n('id'),
        name: f.get('name') ?? '',
        db: n('db'),
        flags: f.get('flags') ?? '',
        cmd: f.get('cmd') ?? '',
        sub: n('sub'),
        psub: n('psub'),
        ssub: n('ssub'),
        multi: n('multi'),
      };
    })
    .filter((c) => name === undefined || c.name === name);
}

/** What the server says of connection `id` (undefined once it is gone). */
export async function clientInfo(id: number): Promise<ClientInfo | undefined> {
  return (await clients()).find((c) => c.id === id);
}

/** Kills connection `id` from the admin connection. */
export async function kill(id: number): Promise<void> {
  const killed = await (await adminClient()).client('KILL', 'ID', String(id));
  if (killed !== 1) throw new Error(`CLIENT KILL ID ${id} killed ${String(killed)} connections`);
}

/** The next borrower of `redis`'s pool: its connection's CLIENT ID and its answer to PING. */
export async function nextBorrower(redis: RedisAdapter): Promise<{ id: number; pong: string }> {
  return redis.use(async (conn) => ({ id: await conn.client('ID'), pong: await conn.ping() }));
}

/**
 * Connection `id` was destroyed: the next borrower gets another, which answers, and the server lets
 * `id` go. Returns how long the next borrower took (ms).
 */
export async function expectDestroyed(redis: RedisAdapter, id: number): Promise<number> {
  const t0 = performance.now();
  const next = await nextBorrower(redis);
  const borrowMs = performance.now() - t0;
  expect(next.id).not.toBe(id);
  expect(next.pong).toBe('PONG');
  expect(
    await settle(
      () => clientInfo(id),
      (c) => c === undefined,
    ),
  ).toBeUndefined();
  return borrowMs;
}
