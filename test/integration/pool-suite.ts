/**
 * The integration suite of createPool, run against a real server through a `PoolDriver`: the
 * connections are real, nothing is mocked, and leases, resets, validation, kills and closes are
 * checked against what the server itself reports. Each `pool-*.test.ts` implements the driver for
 * one server and calls `describePoolAgainst`. The `// site:NAME` markers are in this file, so
 * the sites are computed from it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
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
import { collectGarbage, collectReports, gate, rejectionOf, sitesIn, sleep, useCleanCustodian } from '../helpers.js';
import { closedPort, collectDestroys, describeWithServer, RUN_ID, settle, type ServerStatus } from './servers.js';

const siteOf = sitesIn(import.meta.url);

/** The three times the session-state test dirties a connection before it goes back to the pool. */
export type DirtyRound = 'handed-over' | 'leaked' | 'killed';

/**
 * The per-connection state a server keeps (an open transaction, the selected database) and the
 * factory's `reset` that clears it. The test dirties a connection, lets another borrower have it,
 * and checks that the borrower sees `clean`.
 */
export interface SessionState<C> {
  /** The test's title: what the reset does and what the next borrower must not see. */
  readonly title: string;
  /** The factory's reset (ROLLBACK, SELECT 0); it fails on a connection killed server-side. */
  reset(conn: C): Promise<void>;
  /** Makes the connection's state dirty; in round 'handed-over', resolves to what `conn` itself sees of it then. */
  dirty(conn: C, round: DirtyRound): Promise<unknown>;
  /** What `dirty(conn, 'handed-over')` resolves to: the dirt really was there. */
  readonly dirtyView: unknown;
  /** What a borrower sees of the state on `conn`. */
  seen(conn: C): Promise<Record<string, unknown>>;
  /** What `seen` resolves to on a connection that was reset (or is fresh). */
  readonly clean: Record<string, unknown>;
  /** Checks, through the admin connection, what the reset must have left on the server. */
  checkServer(): Promise<void>;
}

/** A server the pool is tested against, and the few things the suite does to it. */
export interface PoolDriver<C> {
  /** Whether the server answered its probe (see servers.ts): down means skipped, or failed under CI. */
  readonly server: ServerStatus;
  /** The describe block's title. */
  readonly title: string;
  /** Starts every pool name; with ' connection', the pools' `kind` ('mysql connection'), which leak reports carry. */
  readonly prefix: string;
  /** What one unit of work is called ('query', 'command') and the phrase for doing several ('queries', 'runs commands'). */
  readonly words: { readonly command: string; readonly commands: string; readonly runsCommands: string };

  /** Before the suite, when the server is up: the admin connection, tables. */
  setUp(): Promise<void>;
  /** After the suite, after the pools are closed: drops what setUp and the tests left on the server. */
  tearDown(): Promise<void>;

  /** Opens a connection the server lists under `tag` (see `listed`); `port` overrides the server's. */
  connect(tag: string, port?: number): Promise<C>;
  /** Closes `conn` and resolves once the server has let go of it: the factory's destroy. */
  close(conn: C): Promise<void>;
  /** Drops the socket without a word, for connections a failed test left open. */
  drop(conn: C): void;
  /** The server's id of `conn`, as known on this side since connect (valid after close too). */
  idOf(conn: C): number;
  /** The server's id of `conn`, asked of the server through `conn`. */
  connectionId(conn: C): Promise<number>;
  /** Ids the server lists of the connections opened under `tag`, ascending. */
  listed(tag: string): Promise<number[]>;
  /** Kills connection `id` server-side, from the admin connection. */
  kill(id: number): Promise<void>;
  /** The factory's validate: a ping. Rejects or is false on a dead connection. */
  ping(conn: C): Promise<boolean>;

  /** Writes and reads back through `conn`, checking the answers. */
  readWrite(conn: C): Promise<void>;
  /** Sends `n` through the server and returns what came back. */
  echo(conn: C, n: number): Promise<number>;
  /** Like `echo`, while keeping the connection busy a while (a server-side sleep, several round trips). */
  busyEcho(conn: C, n: number): Promise<number>;
  /** A request whose answer is known (a computation, an echo), and that answer. */
  readonly question: { ask(conn: C): Promise<unknown>; readonly answer: unknown };
  /** The cheapest command that needs a working connection (SELECT 1, PING), and its answer. */
  readonly roundTrip: { run(conn: C): Promise<unknown>; readonly answer: unknown };
  /**
   * Starts a command that runs for 10 s and resolves once the server shows `conn` running it; the
   * command is wrapped so that it is not awaited here. It rejects when the connection is killed.
   */
  startSlowCommand(conn: C): Promise<{ readonly command: Promise<unknown> }>;

  readonly session: SessionState<C>;
}

/** A pool's factory with a record of what it did, so the server's view can be checked against it. */
interface Tracked<C> {
  readonly factory: PoolFactory<C>;
  /** What the server lists this factory's connections under (see `PoolDriver.listed`). */
  readonly tag: string;
  /** Calls of create, failed or not. */
  creates: number;
  /** Server id of every connection create made, in order. */
  readonly ids: number[];
  /** Server id of every connection whose destroy has finished, in order. */
  readonly destroyed: number[];
}

const sorted = (ids: readonly number[]) => [...ids].sort((a, b) => a - b);

/**
 * `n` tasks, each in its own scope, that all hold a lease at the same time (so that `n` connections
 * exist), then `use` it and release it; resolves to what `use` returned, in task order.
 */
async function borrowAtOnce<C, R>(pool: Pool<C>, n: number, use: (conn: C) => Promise<R>): Promise<R[]> {
  const allIn = gate();
  let inside = 0;
  return Promise.all(
    Array.from({ length: n }, () =>
      withScope(async () => {
        await using lease = await pool.acquire();
        if (++inside === n) allIn.open();
        await allIn.promise;
        return await use(lease.value); // before the lease is released
      }),
    ),
  );
}

export function describePoolAgainst<C>(driver: PoolDriver<C>): void {
  const { server, session, words } = driver;
  const name = (test: string) => `${driver.prefix}-${test}-${RUN_ID}`;
  const kind = `${driver.prefix} connection`;

  useCleanCustodian({ leaks: 'reclaim' });

  /** Every connection any factory made, so afterAll can drop those a failed test left open. */
  const opened = new Set<C>();
  const pools: Pool<C>[] = [];
  let factories = 0;

  /** `connect` gets the tag the connection must be listed under. */
  function tracked(extra: Pick<PoolFactory<C>, 'validate' | 'reset'> = {}, connect = (tag: string) => driver.connect(tag)): Tracked<C> {
    const tag = `custodian-it-${RUN_ID}-${++factories}`;
    const t: Tracked<C> = {
      tag,
      creates: 0,
      ids: [],
      destroyed: [],
      factory: {
        create: async () => {
          t.creates++;
          const conn = await connect(tag);
          opened.add(conn);
          t.ids.push(driver.idOf(conn));
          return conn;
        },
        destroy: async (conn) => {
          await driver.close(conn);
          opened.delete(conn);
          t.destroyed.push(driver.idOf(conn));
        },
        ...extra,
      },
    };
    return t;
  }

  function newPool(t: Tracked<C>, options: PoolOptions = {}): Pool<C> {
    const pool = createPool(t.factory, { kind, acquireTimeoutMs: 10_000, ...options });
    pools.push(pool);
    return pool;
  }

  /** The connections of `t` the server lists (only those of `ids`, when given). */
  const onServer = async (t: Tracked<C>, ids?: readonly number[]) => (await driver.listed(t.tag)).filter((id) => ids?.includes(id) ?? true);

  /** Waits for the server to let go of the connections of `t` (of `ids`, when given); returns those it still lists. */
  const goneFromServer = (t: Tracked<C>, ids?: readonly number[]) =>
    settle(
      () => onServer(t, ids),
      (left) => left.length === 0,
    );

  describeWithServer(server, driver.title, () => {
    beforeAll(async () => {
      if (!server.up) return;
      await driver.setUp();
    });

    afterAll(async () => {
      await Promise.allSettled(pools.map((pool) => pool.close({ timeout: 1_000 })));
      for (const conn of opened) driver.drop(conn);
      opened.clear();
      if (server.up) await driver.tearDown();
    });

    it(`acquires, ${words.runsCommands} and releases in a scope; a leaked connection is reclaimed at scope end, reported with its line, and reused`, async () => {
      allowLeaks();
      const t = tracked();
      const pool = newPool(t, { name: name('leak'), max: 2 });
      const { reports, stop } = collectReports();
      let first: number;
      try {
        first = await withScope(async () => {
          const lease = await pool.acquire();
          await driver.readWrite(lease.value);
          const id = await driver.connectionId(lease.value);
          await lease.release();
          return id;
        });
        expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
        expect(reports).toEqual([]);

        const leaked = await withScope(async () => {
          const lease = await pool.acquire(); // site:leak
          return driver.connectionId(lease.value);
        });
        expect(leaked).toBe(first);
        expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
        expect(reports).toMatchObject([
          {
            type: 'unreleased',
            cancelled: false,
            resources: [{ kind, label: pool.name, pool: pool.name, site: siteOf('leak', 'acquire') }],
          },
        ]);

        const next = await withScope(async () => {
          await using lease = await pool.acquire();
          return driver.connectionId(lease.value);
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
      allowLeaks();
      const t = tracked();
      const pool = newPool(t, { name: name('many'), max: 4 });
      expect(await onServer(t)).toEqual([]); // the baseline: none of this pool's

      const { reports, stop } = collectReports();
      const tasks = 60;
      let outcomes: PromiseSettledResult<number>[];
      try {
        outcomes = await Promise.allSettled(
          Array.from({ length: tasks }, (_, i) =>
            withScope(async () => {
              if (i % 3 === 0) {
                const lease = await pool.acquire(); // site:many-leak
                return driver.echo(lease.value, i);
              }
              await using lease = await pool.acquire();
              const n = await driver.echo(lease.value, i);
              if (i % 3 === 1) throw new Error(`task ${i} failed after its ${words.command}`);
              return n;
            }),
          ),
        );
      } finally {
        stop();
      }
      outcomes.forEach((outcome, i) => {
        if (i % 3 === 1)
          expect(outcome).toMatchObject({ status: 'rejected', reason: { message: `task ${i} failed after its ${words.command}` } });
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

    it(session.title, async () => {
      allowLeaks(); // one round leaks the connection on purpose
      const resets: number[] = [];
      const t = tracked({
        reset: async (conn) => {
          resets.push(driver.idOf(conn));
          await session.reset(conn);
        },
      });
      const pool = newPool(t, { name: name('reset'), max: 1 });
      /** The connection's id (asked of the server) and what its borrower sees of the session state. */
      const seen = async (conn: C) => ({ id: await driver.connectionId(conn), ...(await session.seen(conn)) });

      // Released dirty, straight to a borrower that was already waiting.
      const dirtied = gate();
      const letGo = gate();
      const writer = withScope(async () => {
        const lease = await pool.acquire();
        const whileHeld = await session.dirty(lease.value, 'handed-over');
        const id = await driver.connectionId(lease.value);
        dirtied.open();
        await letGo.promise;
        await lease.release();
        return { id, whileHeld };
      });
      await dirtied.promise;
      const reader = withScope(async () => {
        await using lease = await pool.acquire();
        return seen(lease.value);
      });
      expect(
        await settle(
          async () => pool.stats().pending,
          (n) => n === 1,
        ),
      ).toBe(1);
      letGo.open();
      const written = await writer;
      const read = await reader;
      expect(written.whileHeld).toEqual(session.dirtyView); // the dirt was there, on that connection
      expect(read).toEqual({ id: written.id, ...session.clean }); // the same connection, after the reset
      await session.checkServer();

      // Left dirty by a task that leaked the lease: the scope's reclaim goes through reset too.
      const leakedId = await withScope(async () => {
        const lease = await pool.acquire();
        await session.dirty(lease.value, 'leaked');
        return driver.connectionId(lease.value);
      });
      const after = await withScope(async () => {
        await using lease = await pool.acquire();
        return seen(lease.value);
      });
      expect(after).toEqual({ id: leakedId, ...session.clean });
      expect(leakedId).toBe(written.id);
      expect(resets).toEqual([written.id, written.id, written.id, written.id]);
      await session.checkServer();

      // Killed while borrowed and then released as if nothing happened: the reset fails, so it is destroyed, not reused.
      const destroys = collectDestroys(pool.name);
      try {
        const deadId = await withScope(async () => {
          const lease = await pool.acquire();
          const id = await driver.connectionId(lease.value);
          await session.dirty(lease.value, 'killed');
          await driver.kill(id);
          expect(await goneFromServer(t, [id])).toEqual([]);
          await expect(lease.release()).resolves.toBeUndefined();
          return id;
        });
        expect(deadId).toBe(written.id);
        expect(destroys.events).toMatchObject([{ reason: 'reset-failed', cause: expect.any(Error) }]);
        expect(t.destroyed).toEqual([deadId]);
        const replacement = await withScope(async () => {
          await using lease = await pool.acquire();
          return seen(lease.value);
        });
        expect(replacement.id).not.toBe(deadId);
        expect(replacement).toEqual({ id: replacement.id, ...session.clean });
      } finally {
        destroys.stop();
      }

      await pool.close();
      expect(await goneFromServer(t)).toEqual([]);
    });

    it('validates idle connections before handing one out: those killed server-side are destroyed and the acquirer gets a fresh one', async () => {
      const pings: number[] = [];
      const t = tracked({
        validate: (conn) => {
          pings.push(driver.idOf(conn));
          return driver.ping(conn);
        },
      });
      const pool = newPool(t, { name: name('validate'), max: 3 });
      const destroys = collectDestroys(pool.name);
      try {
        // Two idle connections, both killed (a server restart, as the pool sees it).
        const killed = await borrowAtOnce(pool, 2, (conn) => driver.connectionId(conn));
        expect(pool.stats()).toMatchObject({ size: 2, available: 2 });
        for (const id of killed) await driver.kill(id);
        expect(await goneFromServer(t)).toEqual([]); // both were all the pool had

        const fresh = await withScope(async () => {
          await using lease = await pool.acquire();
          return { id: await driver.connectionId(lease.value), answer: await driver.question.ask(lease.value) };
        });
        expect(fresh.answer).toBe(driver.question.answer);
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
          return driver.connectionId(lease.value);
        });
        expect(again).toBe(fresh.id);
        expect(pings.slice(2)).toEqual([fresh.id]);
      } finally {
        destroys.stop();
      }
      await pool.close();
      expect(await goneFromServer(t)).toEqual([]);
    });

    it(`replaces a borrowed connection killed mid-${words.command} once the code calls lease.destroy(err)`, async () => {
      const t = tracked();
      const pool = newPool(t, { name: name(`mid${words.command}`), max: 2, min: 1 });
      expect(
        await settle(
          async () => pool.stats().available,
          (n) => n === 1,
        ),
      ).toBe(1);
      const destroys = collectDestroys(pool.name);
      try {
        const victim = await withScope(async () => {
          const lease = await pool.acquire();
          const id = await driver.connectionId(lease.value);
          const { command } = await driver.startSlowCommand(lease.value);
          await driver.kill(id);
          const error = await rejectionOf(command);
          await lease.destroy(error);
          return { id, error };
        });
        expect(victim.error).toBeInstanceOf(Error);
        expect(destroys.events).toEqual([expect.objectContaining({ reason: 'destroyed', cause: victim.error })]);
        expect(t.destroyed).toEqual([victim.id]);
        expect(pool.stats().borrowed).toBe(0);

        // min: 1, so the pool makes a replacement by itself.
        const stats = await settle(
          async () => pool.stats(),
          (s) => s.available === 1,
        );
        expect(stats).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
        expect(t.ids).toHaveLength(2);
        const next = await withScope(async () => {
          await using lease = await pool.acquire();
          return { id: await driver.connectionId(lease.value), answer: await driver.roundTrip.run(lease.value) };
        });
        expect(next.answer).toBe(driver.roundTrip.answer);
        expect(next.id).not.toBe(victim.id);
        expect(next.id).toBe(t.ids[1]);
        expect(await onServer(t)).toEqual([next.id]);
      } finally {
        destroys.stop();
      }
      await pool.close();
      expect(await goneFromServer(t)).toEqual([]);
    });

    it('destroys a connection whose lease was garbage-collected while the code still used it, and never lends it again', async () => {
      allowLeaks();
      const t = tracked();
      const pool = newPool(t, { name: name('collected'), max: 1 });
      const { reports, stop } = collectReports();
      // Outside any scope: the code keeps the connection and drops its lease (the GC backstop's case).
      const kept = await (async () => (await pool.acquire()).value)();
      const keptId = await driver.connectionId(kept);
      await collectGarbage(() => reports.some((r) => r.type === 'collected'));
      stop();
      expect(reports.map((r) => r.type)).toEqual(['collected']);
      const next = await withScope(async () => {
        await using lease = await pool.acquire();
        return driver.connectionId(lease.value);
      });
      expect(next).not.toBe(keptId); // a new connection, not the one the first user still holds
      expect(
        await settle(
          async () => t.destroyed,
          (ids) => ids.includes(keptId),
        ),
      ).toEqual([keptId]);
      expect(await goneFromServer(t, [keptId])).toEqual([]);
      await expect(driver.roundTrip.run(kept)).rejects.toBeInstanceOf(Error); // its user learns it is gone
      await pool.close();
    });

    it('never has more than max connections on the server while those cut off mid-command are being torn down', async () => {
      allowLeaks();
      const t = tracked();
      // A server slow to let go: each close takes 200 ms more (a connection killed mid-query lives
      // until the server notices). The pool must count it against max all that time.
      const close = t.factory.destroy;
      t.factory.destroy = async (conn) => {
        await sleep(200);
        await close(conn);
      };
      const pool = newPool(t, { name: name('max-live'), max: 3 });
      let peak = 0;
      let watching = true;
      const watch = (async () => {
        while (watching) {
          peak = Math.max(peak, (await onServer(t)).length);
          await sleep(5);
        }
      })();
      // 3 waves of 3 tasks, each cut off by its timeout in the middle of a slow command.
      for (let wave = 0; wave < 3; wave++) {
        const tasks = Array.from({ length: 3 }, () =>
          withScope(
            async () => {
              const lease = await pool.acquire();
              await driver.startSlowCommand(lease.value);
              await new Promise(() => {}); // cut off by the timeout; the lease is destroyed
            },
            { timeout: 150 },
          ).catch((error: unknown) => error),
        );
        expect(await Promise.all(tasks)).toMatchObject([{ name: 'TimeoutError' }, { name: 'TimeoutError' }, { name: 'TimeoutError' }]);
      }
      watching = false;
      await watch;
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(3);
      await pool.close();
      expect(await goneFromServer(t)).toEqual([]);
    });

    it('fails 50 concurrent acquires with PoolCreateError (cause: ECONNREFUSED) when the server refuses, without a retry loop', async () => {
      const port = await closedPort();
      const failures: unknown[] = [];
      const t = tracked({}, async (tag) => {
        try {
          return await driver.connect(tag, port);
        } catch (error) {
          failures.push(error);
          throw error;
        }
      });
      const max = 5;
      // A timeout far beyond the test's: only a create failure can end these acquires in time.
      const pool = newPool(t, { name: name('refused'), max, acquireTimeoutMs: 60_000 });
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

    it(`resumes each of 30 waiting tasks in its own scope, on a pool of 2 running real ${words.commands}`, async () => {
      const t = tracked();
      const pool = newPool(t, { name: name('waiters'), max: 2 });
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          withScope(async (scope) => {
            const lease = await pool.acquire();
            const ownAfterAcquire = currentScope() === scope;
            const heldByOwnScope = inspect({ maxScopes: 1_000 }).scopes.oldest.find((s) => s.id === scope.id)?.leases;
            const echoed = await driver.busyEcho(lease.value, i);
            const ownAfterCommand = currentScope() === scope;
            const id = await driver.connectionId(lease.value);
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
      const t = tracked();
      const pool = newPool(t, { name: name('close'), max: 4 });
      // Four at once, so that four connections exist.
      await borrowAtOnce(pool, 4, (conn) => driver.roundTrip.run(conn));
      expect(t.ids).toHaveLength(4);
      expect(await onServer(t)).toEqual(sorted(t.ids));

      const holding = gate();
      const letGo = gate();
      const holder = withScope(async () => {
        const lease = await pool.acquire();
        holding.open();
        await letGo.promise;
        const answer = await driver.roundTrip.run(lease.value);
        await lease.release();
        return answer;
      });
      await holding.promise;
      const closing = pool.close();
      expect(await rejectionOf(withScope(() => pool.acquire()))).toBeInstanceOf(PoolClosedError);
      letGo.open();
      expect(await holder).toBe(driver.roundTrip.answer); // the borrowed connection still worked while close() waited
      await closing;
      expect(sorted(t.destroyed)).toEqual(sorted(t.ids)); // every destroy finished before close() resolved
      expect(await goneFromServer(t)).toEqual([]);
    });

    it('close() while connections are still being created fails the waiting acquires and closes those connections once made', async () => {
      const connected = gate();
      const proceed = gate();
      let connecting = 0;
      const t = tracked({}, async (tag) => {
        const conn = await driver.connect(tag); // connected server-side; the pool does not have it yet
        if (++connecting === 2) connected.open();
        await proceed.promise;
        return conn;
      });
      const pool = newPool(t, { name: name('close-creating'), max: 2 });
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
      const t = tracked();
      const pool = newPool(t, { name: name('closed-stats'), max: 2 });
      await borrowAtOnce(pool, 2, (conn) => driver.roundTrip.run(conn));
      expect(pool.stats()).toMatchObject({ size: 2, available: 2, borrowed: 0, pending: 0 });
      await pool.close();
      expect(sorted(t.destroyed)).toEqual(sorted(t.ids));
      expect(await goneFromServer(t)).toEqual([]);
      // Documented: size === available + borrowed when nothing is being created; all three are 0 now.
      expect(pool.stats()).toMatchObject({ size: 0, available: 0, borrowed: 0, pending: 0 });
    });
  });
}
