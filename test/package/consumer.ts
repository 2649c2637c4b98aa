/**
 * Type-checked (by `npm run typecheck`), never run: code written the way a user writes it, against
 * the published declarations (`custodian` resolves through the package's own `exports` map to
 * dist/src/*.d.ts). If a declaration leaks an internal type or loses a public one, this breaks.
 */
import {
  configure,
  currentScope,
  flattenSuppressed,
  getReleaseErrors,
  inspect,
  openScope,
  track,
  withScope,
  type Lease,
  type LeakReport,
  type Scope,
  type Snapshot,
} from 'custodian';

interface Connection {
  query(sql: string): Promise<number>;
  end(): Promise<void>;
}
declare function connect(): Promise<Connection>;

export async function handler(): Promise<number> {
  configure({ leaks: 'warn', onLeak: (report: LeakReport) => void report.message });
  return withScope(
    async (scope: Scope) => {
      await using lease: Lease<Connection> = scope.track(await connect(), { release: (c) => c.end(), kind: 'db connection' });
      scope.defer(() => undefined);
      const site: string | undefined = lease.site;
      void site;
      return lease.value.query('select 1');
    },
    { name: 'GET /', timeout: 1000, signal: new AbortController().signal, leaks: 'throw' },
  );
}

export async function consumer(): Promise<Snapshot> {
  await using scope = openScope({ name: 'consumer' });
  scope.run(() => currentScope()?.adopt(1, () => undefined));
  const lease = track({ id: 1 }, { release: () => undefined });
  await lease.release();
  try {
    await scope.close();
  } catch (error) {
    flattenSuppressed(error).concat(getReleaseErrors(error));
  }
  // @ts-expect-error internal members are not published
  void scope.entries;
  // @ts-expect-error internal members are not published
  scope.runTask(() => 1);
  return inspect({ maxScopes: 10 });
}

// The pool, as a user writes it against the published declarations.
import { createPool, PoolTimeoutError, type Pool, type PoolStats } from 'custodian';

export async function pooled(): Promise<number> {
  const pool: Pool<Connection> = createPool(
    {
      create: connect,
      destroy: (c) => c.end(),
      validate: async (c) => (await c.query('select 1')) === 1,
      reset: (c) => c.query('rollback'),
    },
    { name: 'db', max: 4, acquireTimeoutMs: 1_000 },
  );
  const stats: PoolStats = pool.stats();
  try {
    return await withScope(async () => {
      await using conn = await pool.acquire({ timeout: 500 });
      return (await conn.value.query('select 1')) + stats.size + (await pool.use((c) => c.query('select 2')));
    });
  } catch (error) {
    if (error instanceof PoolTimeoutError) return error.waitMs;
    throw error;
  } finally {
    await pool.close({ timeout: 1_000 });
  }
}

// Test mode, as a user's test file and setup file write it.
import { expect } from 'vitest';
import {
  allowLeaks,
  configureLeakCheck,
  expectNoHeapGrowth,
  expectNoLeaks,
  HeapGrowthError,
  ignoreCurrent,
  ignoreLeaks,
  LeakCheckError,
  type FoundLeak,
  type HeapGrowth,
  type IgnoreRules,
  type LeakCheckOptions,
} from 'custodian/vitest';

export async function testMode(): Promise<number> {
  const rules: IgnoreRules = { sites: ['test/support/', /fixtures\//], kinds: ['metrics timer'] };
  const options: LeakCheckOptions = { waitMs: 200, handles: true, ignore: rules };
  configureLeakCheck(options);
  ignoreLeaks(rules);
  ignoreCurrent();
  allowLeaks({ kinds: ['scope'] });
  const value: number = await expectNoLeaks(() => pooled(), { waitMs: 50 });
  await expect(() => handler()).not.toLeakResources();
  await expect(async () => void track(1, { release: () => {} })).toLeakResources({ waitMs: 0 });
  try {
    const growth: HeapGrowth = await expectNoHeapGrowth(() => handler(), {
      iterations: 1_000,
      warmup: 100,
      maxBytesPerIteration: 32,
      samples: 6,
    });
    return value + growth.bytesPerIteration;
  } catch (error) {
    if (error instanceof LeakCheckError) return error.leaks.map((leak: FoundLeak) => leak.heldMs).length + error.waitedMs;
    if (error instanceof HeapGrowthError) return error.growth.samples.length;
    throw error;
  }
  // @ts-expect-error the matcher takes options, not a string
  await expect(handler).not.toLeakResources('fast');
}

// What a user must not be able to write: scopes, leases and pools come only from withScope,
// openScope, track and createPool, and their machinery is out of reach. Each line below must be a
// type error (an unused @ts-expect-error fails the check).
import { CustodianError } from 'custodian';

export function misuse(scope: Scope, lease: Lease<number>, pool: Pool<number>): void {
  // @ts-expect-error Scope is a type, not a class: no `new Scope()`
  void new Scope();
  // @ts-expect-error no `new Lease()` either
  void new Lease<number>();
  // @ts-expect-error nor `new Pool()`
  void new Pool<number>();
  // @ts-expect-error a scope's resources are not reachable
  void scope.entries;
  // @ts-expect-error nor its place in the tree of open scopes
  void scope.tail;
  // @ts-expect-error nor the sweep's bookkeeping
  void scope.seenAt;
  // @ts-expect-error nor a test's origin
  void scope.origin;
  // @ts-expect-error its id is read-only
  scope.id = 1;
  // @ts-expect-error a lease's state is private
  void lease.state;
  // @ts-expect-error a pool's engine is private
  void pool.engine;
  // @ts-expect-error CustodianError is the base of custodian's errors, not one to throw
  void new CustodianError('x');
}
