/**
 * custodian/redis: an ioredis adapter whose connections cannot leak, hang or carry state to the
 * next task. `createRedis(options)` gives a shared client for ordinary commands and a pool of
 * dedicated connections for blocking commands, transactions, pub/sub and SELECT. See docs/redis.md.
 */
export { createRedis, type RedisAdapter, type RedisCloseOptions, type RedisStats } from './create-redis.js';
export { RedisConnectionError } from './errors.js';
export type { RedisAdapterOptions, RedisConnectionOptions } from './options.js';
export type { SharedClientStats } from './shared.js';
