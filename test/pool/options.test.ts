/**
 * createPool's factory and options, acquire()'s and close()'s options: every bad one is a TypeError
 * that names it, and a pool given a bad one creates nothing and is not registered.
 */
import { describe, expect, it } from 'vitest';
import { createPool, inspect, withScope, type PoolFactory, type PoolOptions } from '../../src/index.js';
import { rejectionOf, thrownBy, useCleanCustodian } from '../helpers.js';
import { fakeFactory, usePools, type Res } from './fake.js';

useCleanCustodian({ leaks: 'reclaim' });
const newPool = usePools();

/** createPool with options the types would refuse. */
const createUnchecked = (factory: unknown, options?: unknown) => createPool(factory as PoolFactory<Res>, options as PoolOptions);

const badOptions: [keyof PoolOptions, unknown][] = [
  ['name', 5],
  ['name', null],
  ['kind', {}],
  ['min', -1],
  ['min', 1.5],
  ['min', '1'],
  ['max', 0],
  ['max', -1],
  ['max', 2.5],
  ['max', Infinity],
  ['maxWaiting', -1],
  ['maxWaiting', 0.5],
  ['acquireTimeoutMs', -1],
  ['acquireTimeoutMs', 1.5],
  ['acquireTimeoutMs', 2 ** 31],
  ['acquireTimeoutMs', '100'],
  ['idleTimeoutMs', -5],
  ['idleTimeoutMs', NaN],
  ['maxLifetimeMs', -1],
  ['maxLifetimeMs', Infinity],
  ['maxUses', -1],
  ['maxUses', 1.5],
  ['validateAfterIdleMs', 'x'],
  ['validateAfterIdleMs', -1],
  ['leakThresholdMs', -1],
  ['leakThresholdMs', true],
];

describe('createPool rejects a bad option with a TypeError that names it, and creates nothing', () => {
  it.each(badOptions)('option %s = %s', (key, value) => {
    const fake = fakeFactory();
    const before = inspect().pools.length;
    const error = thrownBy(() => createUnchecked(fake.factory, { [key]: value }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toContain(`createPool(): option '${key}' must be`);
    expect(fake.createCalls()).toBe(0);
    expect(inspect().pools.length).toBe(before);
  });

  it('says what fits and what it got', () => {
    const fake = fakeFactory();
    expect(thrownBy(() => createPool(fake.factory, { max: 0 }))).toEqual(
      new TypeError("createPool(): option 'max' must be a whole number above 0, got 0"),
    );
    expect((thrownBy(() => createUnchecked(fake.factory, { acquireTimeoutMs: -1 })) as Error).message).toBe(
      "createPool(): option 'acquireTimeoutMs' must be a whole number of milliseconds from 0 to 2147483647, got -1",
    );
  });

  it('rejects an unknown option key (a misspelling is not silently ignored)', () => {
    const fake = fakeFactory();
    const error = thrownBy(() => createUnchecked(fake.factory, { maxSize: 3 }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/^createPool\(\): unknown option 'maxSize'; known options are name, kind, min, max, /);
    expect(fake.createCalls()).toBe(0);
  });

  it('rejects options that are not an object', () => {
    const fake = fakeFactory();
    for (const options of [5, 'max', null, [1]]) {
      const error = thrownBy(() => createUnchecked(fake.factory, options));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain('createPool(): options must be an object');
    }
    expect(fake.createCalls()).toBe(0);
  });

  it('rejects min > max, naming both, including min above the default max of 10', () => {
    const fake = fakeFactory();
    expect(thrownBy(() => createPool(fake.factory, { min: 3, max: 2 }))).toEqual(
      new TypeError("createPool(): option 'min' (3) must not exceed option 'max' (2)"),
    );
    const error = thrownBy(() => createPool(fake.factory, { min: 11 }));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe("createPool(): option 'min' (11) must not exceed option 'max' (10)");
    expect(fake.createCalls()).toBe(0);
  });

  it('accepts min === max, and undefined values as absent', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory, { min: 2, max: 2, name: undefined, maxWaiting: undefined });
    await new Promise((resolve) => setImmediate(resolve));
    expect(pool.stats()).toMatchObject({ min: 2, max: 2, size: 2 });
  });
});

describe('createPool rejects a bad factory', () => {
  const create = () => ({ id: 1 });
  const destroy = () => {};

  it.each([
    [
      'create is missing',
      { destroy },
      'createPool(): factory.create must be a function (a pool needs create() and destroy()), got undefined',
    ],
    [
      'destroy is missing',
      { create },
      'createPool(): factory.destroy must be a function (a pool needs create() and destroy()), got undefined',
    ],
    [
      'create is not a function',
      { create: 5, destroy },
      'createPool(): factory.create must be a function (a pool needs create() and destroy()), got 5',
    ],
    ['validate is not a function', { create, destroy, validate: true }, 'createPool(): factory.validate must be a function, got true'],
    ['reset is not a function', { create, destroy, reset: 'rollback' }, 'createPool(): factory.reset must be a function, got "rollback"'],
    [
      'a key is unknown',
      { create, destroy, validat: () => true },
      "createPool(): unknown factory key 'validat'; a factory has create, destroy, validate and reset",
    ],
  ])('when %s', (_what, factory, message) => {
    const before = inspect().pools.length;
    expect(thrownBy(() => createUnchecked(factory))).toEqual(new TypeError(message));
    expect(inspect().pools.length).toBe(before);
  });

  it('rejects a factory that is not an object', () => {
    for (const factory of [undefined, null, 5, () => ({})]) {
      const error = thrownBy(() => createUnchecked(factory));
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain('createPool(): factory must be an object with create and destroy functions');
    }
  });

  it('calls no factory function when an option is bad, even with min > 0', () => {
    let calls = 0;
    const factory = { create: () => ({ id: ++calls }), destroy: () => void calls++ };
    thrownBy(() => createUnchecked(factory, { min: 2, max: 'many' }));
    thrownBy(() => createUnchecked(factory, { min: 2, unknown: 1 }));
    expect(calls).toBe(0);
  });

  it('accepts a class instance whose functions are on its prototype', async () => {
    let made = 0;
    class Factory {
      create(): Res {
        return { id: ++made };
      }
      destroy(): void {}
    }
    const pool = newPool<Res>(new Factory());
    const lease = await pool.acquire();
    expect(lease.value).toEqual({ id: 1 });
    await lease.release();
  });

  it('calls every factory function of a class instance as a method (this is the instance)', async () => {
    const log: string[] = [];
    let made = 0;
    class Factory {
      create(): Res {
        this.record('create', ++made);
        return { id: made };
      }
      destroy(r: Res): void {
        this.record('destroy', r.id);
      }
      validate(r: Res): boolean {
        this.record('validate', r.id);
        return true;
      }
      reset(r: Res): void {
        this.record('reset', r.id);
      }
      record(what: string, id: number): void {
        log.push(`${what} ${id}`);
      }
    }
    const pool = newPool<Res>(new Factory());
    const first = await pool.acquire();
    await first.release();
    const second = await pool.acquire();
    await second.release();
    await pool.close();
    expect(log).toEqual(['create 1', 'reset 1', 'validate 1', 'reset 1', 'destroy 1']);
  });

  it('accepts a class instance that keeps state in fields (the fields are not factory keys)', async () => {
    // The factory check reads create/destroy through the prototype so that a class instance works;
    // a real one keeps its configuration in fields, which must not be mistaken for misspelt keys.
    class Factory {
      made = 0;
      constructor(readonly url: string) {}
      create(): Res {
        return { id: ++this.made };
      }
      destroy(): void {}
    }
    const pool = newPool<Res>(new Factory('mem://db'));
    const lease = await pool.acquire();
    expect(lease.value).toEqual({ id: 1 });
    await lease.release();
  });
});

describe('defaults', () => {
  it('names the pool "pool #<n>", uses kind "pooled resource", min 0, max 10', async () => {
    const pool = newPool(fakeFactory().factory);
    expect(pool.name).toMatch(/^pool #\d+$/);
    expect(pool.stats()).toEqual({ size: 0, available: 0, borrowed: 0, pending: 0, destroying: 0, min: 0, max: 10 });
    const lease = await pool.acquire();
    expect(lease.kind).toBe('pooled resource');
    expect(lease.label).toBe(pool.name);
    await lease.release();
  });

  it('gives each unnamed pool its own name', () => {
    const a = newPool(fakeFactory().factory);
    const b = newPool(fakeFactory().factory);
    expect(a.name).not.toBe(b.name);
  });

  it('uses the given name and kind on leases', async () => {
    const pool = newPool(fakeFactory().factory, { name: 'db', kind: 'mysql connection' });
    const lease = await pool.acquire();
    expect([pool.name, lease.kind, lease.label]).toEqual(['db', 'mysql connection', 'db']);
    await lease.release();
  });
});

describe('acquire() options', () => {
  it.each([
    ['timeout', { timeout: -1 }, "pool.acquire(): option 'timeout' must be a whole number of milliseconds from 0 to 2147483647, got -1"],
    ['timeout', { timeout: 1.5 }, "pool.acquire(): option 'timeout' must be a whole number of milliseconds from 0 to 2147483647, got 1.5"],
    ['signal', { signal: 'x' }, 'pool.acquire(): option \'signal\' must be an AbortSignal (for example controller.signal), got "x"'],
    ['signal', { signal: {} }, "pool.acquire(): option 'signal' must be an AbortSignal (for example controller.signal), got an object"],
  ])('rejects a bad %s with a TypeError naming it, and creates nothing', async (_key, options, message) => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const promise = pool.acquire(options as never); // rejects, never throws
    expect(await rejectionOf(promise)).toEqual(new TypeError(message));
    expect(fake.createCalls()).toBe(0);
    expect(pool.stats()).toMatchObject({ size: 0, pending: 0, borrowed: 0 });
  });

  it('rejects an unknown option key and options that are not an object', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const unknown = await rejectionOf(pool.acquire({ timout: 5 } as never));
    expect(unknown).toBeInstanceOf(TypeError);
    expect((unknown as Error).message).toBe("pool.acquire(): unknown option 'timout'; known options are signal, timeout, boundary");
    const notObject = await rejectionOf(pool.acquire(5 as never));
    expect(notObject).toBeInstanceOf(TypeError);
    expect((notObject as Error).message).toContain('pool.acquire(): options must be an object');
    expect(fake.createCalls()).toBe(0);
  });

  it('pool.use() rejects a fn that is not a function, and bad options, acquiring nothing', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const error = await rejectionOf(pool.use('nope' as never));
    expect(error).toEqual(new TypeError('pool.use(): fn must be a function, got "nope"'));
    const bad = await rejectionOf(pool.use(() => 1, { timeout: -1 }));
    expect(bad).toBeInstanceOf(TypeError);
    expect((bad as Error).message).toContain("option 'timeout'");
    expect(fake.createCalls()).toBe(0);
    expect(pool.stats().borrowed).toBe(0);
  });

  it('validates options inside a scope too, without touching the scope', async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const error = await withScope(() => rejectionOf(pool.acquire({ signal: 'x' } as never)));
    expect(error).toBeInstanceOf(TypeError);
    expect(fake.createCalls()).toBe(0);
  });
});

describe('close() options', () => {
  it("rejects close({ timeout: 'x' }) with a TypeError naming timeout, and leaves the pool open", async () => {
    const fake = fakeFactory();
    const pool = newPool(fake.factory);
    const error = await rejectionOf(pool.close({ timeout: 'x' } as never));
    expect(error).toEqual(
      new TypeError('pool.close(): option \'timeout\' must be a whole number of milliseconds from 0 to 2147483647, got "x"'),
    );
    expect(inspect().pools.map((p) => p.name)).toContain(pool.name);
    const lease = await pool.acquire(); // still open
    await lease.release();
    await pool.close(); // a good close afterwards still closes it
    expect(inspect().pools.map((p) => p.name)).not.toContain(pool.name);
    expect(fake.destroyedIds()).toEqual([1]);
  });

  it('rejects an unknown close option', async () => {
    const pool = newPool(fakeFactory().factory);
    const error = await rejectionOf(pool.close({ timeot: 5 } as never));
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe("pool.close(): unknown option 'timeot'; known options are timeout");
  });
});
