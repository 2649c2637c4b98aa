/**
 * In-memory fakes for the pool tests: resources that are objects with an id, a factory that counts
 * what it created and destroyed, creates the test settles by hand, a channel recorder, and a hook
 * that closes every pool a test opened.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach } from 'vitest';
import { createPool, type Pool, type PoolFactory, type PoolOptions } from '../../src/index.js';

/** A pooled fake resource. */
export interface Res {
  readonly id: number;
}

/** A factory that makes `{ id }` objects (ids 1, 2, 3, ...) and records every create and destroy. */
export interface Fake {
  /** The factory to give `createPool`: `create` and `destroy`, plus the overrides. */
  readonly factory: PoolFactory<Res>;
  /** Makes the next resource and records it (what the default `create` does). */
  make(): Res;
  /** Every resource made, in order. */
  readonly created: Res[];
  /** Every resource `destroy` was called with, in order (a resource twice if destroyed twice). */
  readonly destroyed: Res[];
  /** How often `create` was called (overrides included: it counts calls, not successes). */
  readonly createCalls: () => number;
  /** Ids of `destroyed`. */
  readonly destroyedIds: () => number[];
}

/**
 * A counting factory. `overrides` replace or add factory functions; an overriding `create` that
 * wants a resource calls `fake.make()` (so pass a function of the fake: see `fakeWith`).
 */
export function fakeFactory(overrides: (fake: Fake) => Partial<PoolFactory<Res>> = () => ({})): Fake {
  let nextId = 1;
  let calls = 0;
  const created: Res[] = [];
  const destroyed: Res[] = [];
  const make = (): Res => {
    const resource = { id: nextId++ };
    created.push(resource);
    return resource;
  };
  const fake: Fake = {
    factory: undefined as unknown as PoolFactory<Res>,
    make,
    created,
    destroyed,
    createCalls: () => calls,
    destroyedIds: () => destroyed.map((r) => r.id),
  };
  const extra = overrides(fake);
  const create = extra.create ?? make;
  const factory: PoolFactory<Res> = {
    create: () => {
      calls++;
      return create();
    },
    destroy: extra.destroy ?? ((resource) => void destroyed.push(resource)),
  };
  if (extra.validate !== undefined) factory.validate = extra.validate;
  if (extra.reset !== undefined) factory.reset = extra.reset;
  (fake as { factory: PoolFactory<Res> }).factory = factory;
  return fake;
}

/** A create the test settles by hand: each call returns a new pending promise, kept in `pending`. */
export function manualCreate(fake: () => Fake): {
  create: () => Promise<Res>;
  /** Creates not settled yet, oldest first. */
  pending: { succeed: () => Res; fail: (error: unknown) => void }[];
} {
  const pending: { succeed: () => Res; fail: (error: unknown) => void }[] = [];
  return {
    pending,
    create: () =>
      new Promise<Res>((resolve, reject) => {
        const entry = {
          succeed: () => {
            pending.splice(pending.indexOf(entry), 1);
            const resource = fake().make();
            resolve(resource);
            return resource;
          },
          fail: (error: unknown) => {
            pending.splice(pending.indexOf(entry), 1);
            reject(error);
          },
        };
        pending.push(entry);
      }),
  };
}

/** Records what is published on one diagnostics channel until `stop()`. */
export function record<M = Record<string, unknown>>(name: string): { messages: M[]; stop: () => void } {
  const messages: M[] = [];
  const onMessage = (message: unknown) => messages.push(message as M);
  subscribe(name, onMessage);
  return { messages, stop: () => unsubscribe(name, onMessage) };
}

/**
 * Returns `newPool(factory, options)`: `createPool`, plus a close (with a short timeout) after
 * each test of the calling file, so that no pool outlives its test with its timers.
 */
export function usePools(): <T>(factory: PoolFactory<T>, options?: PoolOptions) => Pool<T> {
  const open: Pool<unknown>[] = [];
  afterEach(async () => {
    const pools = open.splice(0);
    // Raced with a timer: a test that found close() hanging must not hang the hooks too.
    const closing = Promise.all(pools.map((pool) => pool.close({ timeout: 50 }).catch(() => {})));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closing, new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)))]);
    clearTimeout(timer);
  });
  return <T>(factory: PoolFactory<T>, options?: PoolOptions) => {
    const pool = createPool(factory, options);
    open.push(pool as Pool<unknown>);
    return pool;
  };
}

/** True once `promise` has settled (checked after letting pending callbacks run). */
export function settledFlag(promise: Promise<unknown>): { readonly settled: boolean } {
  const flag = { settled: false };
  promise.then(
    () => (flag.settled = true),
    () => (flag.settled = true),
  );
  return flag;
}
