/**
 * A validate that changes the pool while it answers (found by an adversarial review of asking
 * validate before the acquire queues): it aborts the acquire's signal, ends its scope, closes the
 * pool, acquires or releases itself, evicts, or answers oddly. The acquire must end as it would
 * have with validate asked from the queue, and a resource validate said no to must be destroyed.
 */
import { describe, expect, it } from 'vitest';
import { openScope, type Lease, type Pool } from '../../src/index.js';
import { flush, sleep, useCleanCustodian } from '../helpers.js';
import { fakeFactory, usePools, type Res } from './fake.js';

useCleanCustodian();
const newPool = usePools();

function poolWith(validate: (r: Res, pool: Pool<Res>) => unknown, opts: Record<string, unknown> = {}) {
  const h: { pool?: Pool<Res> } = {};
  const fake = fakeFactory(() => ({ validate: (r: Res) => validate(r, h.pool!) as boolean }));
  const pool = newPool(fake.factory, { max: 1, ...opts });
  h.pool = pool;
  return { fake, pool };
}
const settle = (p: Promise<unknown>) =>
  p.then(
    (v) => ({ ok: true, v }),
    (e) => ({ ok: false, e: String(e) }),
  );

describe('signal aborted by validate', () => {
  const answers = [
    ['sync yes', () => true],
    ['promised yes', () => Promise.resolve(true)],
    ['sync no', () => false],
  ] as const;
  for (const [label, answer] of answers)
    it(`${label}: the acquire is refused with the abort reason, and nothing is made for it`, async () => {
      const ac = new AbortController();
      let armed = false;
      const { pool, fake } = poolWith(() => (armed && ac.abort(new Error('aborted in validate')), answer()));
      await (await pool.acquire()).release();
      armed = true;
      await expect(pool.acquire({ signal: ac.signal })).rejects.toThrow('aborted in validate');
      expect(fake.createCalls()).toBe(1);
    });
});

describe('scope ended by validate', () => {
  for (const kind of ['cancel', 'close'] as const)
    for (const answer of ['yes', 'no', 'promise-yes', 'promise-no'] as const)
      it(`${kind} + ${answer}: refused, and no broken resource kept`, async () => {
        let scope: ReturnType<typeof openScope> | undefined;
        const { pool, fake } = poolWith(() => {
          if (scope !== undefined) {
            const s = scope;
            scope = undefined;
            if (kind === 'cancel') s.cancel(new Error('cancelled in validate'));
            else void s.close();
          }
          return answer === 'yes' ? true : answer === 'no' ? false : Promise.resolve(answer === 'promise-yes');
        });
        await (await pool.acquire()).release();
        const s = openScope();
        scope = s;
        const r = await settle(s.run(() => pool.acquire()));
        await s.close().catch(() => {});
        expect(r.ok).toBe(false);
        await flush();
        await sleep(5);
        const st = pool.stats();
        expect(st.size).toBe(st.available + st.borrowed);
        if (answer === 'no' || answer === 'promise-no') expect(fake.destroyedIds()).toEqual([1]); // validate said broken
      });
});

describe('reentrant validate', () => {
  it('sync pool.acquire() inside validate (max 1), yes', async () => {
    const nested: Promise<Lease<Res>>[] = [];
    let armed = false;
    const { pool } = poolWith((_r, p) => (armed && ((armed = false), nested.push(p.acquire({ timeout: 200 }))), true));
    await (await pool.acquire()).release();
    armed = true;
    const a = await pool.acquire();
    expect(pool.stats()).toMatchObject({ size: 1, borrowed: 1, pending: 1 });
    await a.release();
    const b = await nested[0]!;
    expect(b.value.id).toBe(1);
    await b.release();
    expect(pool.stats()).toMatchObject({ size: 1, available: 1, borrowed: 0, pending: 0 });
  });
  for (const ans of [false, 'promise-false', 'promise-true'] as const)
    it(`sync pool.acquire() inside validate (max 2), ${String(ans)}`, async () => {
      const nested: Promise<Lease<Res>>[] = [];
      let armed = false;
      const { pool } = poolWith(
        (r, p) => {
          if (armed) {
            armed = false;
            nested.push(p.acquire({ timeout: 300 }));
          }
          return ans === false ? r.id !== 1 : Promise.resolve(ans === 'promise-true' || r.id !== 1);
        },
        { max: 2 },
      );
      await (await pool.acquire()).release();
      armed = true;
      const pa = pool.acquire({ timeout: 300 });
      await flush();
      const [a, b] = await Promise.all([pa, nested[0]!]);
      expect(a.value.id).not.toBe(b!.value.id);
      expect(pool.stats().size).toBeLessThanOrEqual(2);
      await a.release();
      await b!.release();
      const st = pool.stats();
      expect(st.size).toBe(st.available + st.borrowed);
    });
  it('validate releases another lease while a waiter waits', async () => {
    let toRelease: Lease<Res> | undefined;
    const { pool } = poolWith(
      () => {
        const l = toRelease;
        toRelease = undefined;
        void l?.release();
        return true;
      },
      { max: 2 },
    );
    const [l1, l2] = await Promise.all([pool.acquire(), pool.acquire()]);
    await l1.release(); // 1 warm
    const pa = pool.acquire(); // pops warm
    const pw = pool.acquire({ timeout: 200 }); // queues: pool full
    toRelease = l2;
    const [a, w] = await Promise.all([pa, pw]);
    expect(a.value.id).not.toBe(w.value.id);
    await a.release();
    await w.release();
    expect(pool.stats()).toMatchObject({ size: 2, available: 2, borrowed: 0, pending: 0 });
  });
  it('validate evicts a different (warm) resource', async () => {
    let victim: Res | undefined;
    const { pool, fake } = poolWith(
      (r, p) => {
        if (victim && victim !== r) {
          p.evict(victim);
          victim = undefined;
        }
        return true;
      },
      { max: 2 },
    );
    const [l1, l2] = await Promise.all([pool.acquire(), pool.acquire()]);
    const v1 = l1.value,
      v2 = l2.value;
    victim = v1;
    await l1.release();
    await l2.release();
    const a = await pool.acquire();
    expect(a.value).toBe(v2);
    await flush();
    expect(fake.destroyed).toEqual([v1]);
    const b = await pool.acquire();
    expect(b.value.id).toBe(3);
    await a.release();
    await b.release();
    expect(pool.stats()).toMatchObject({ size: 2, borrowed: 0 });
  });
  it('validate evicts itself and answers no: destroyed once', async () => {
    let armed = false;
    const { pool, fake } = poolWith((r, p) => (armed ? (p.evict(r), false) : true));
    await (await pool.acquire()).release();
    armed = true;
    const l = await pool.acquire();
    await l.release();
    await sleep(5);
    expect(fake.destroyedIds()).toEqual([1]);
  });
});

describe('validate changes the pool and answers yes', () => {
  it('evicting the resource it checks: the yes is not taken, the resource is destroyed, the acquire gets a new one', async () => {
    const { pool, fake } = poolWith((r, p) => (r.id === 1 ? (p.evict(r), true) : true));
    await (await pool.acquire()).release();
    const lease = await pool.acquire();
    expect(lease.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await lease.release();
  });

  it('closing the pool: the acquire is refused, and nothing is lent from a closed pool', async () => {
    let closing: Promise<void> | undefined;
    const { pool, fake } = poolWith((_r, p) => ((closing = p.close()), true));
    await (await pool.acquire()).release();
    await expect(pool.acquire()).rejects.toThrow(/closed/);
    await closing;
    expect(fake.destroyedIds()).toEqual([1]);
    expect(pool.stats()).toMatchObject({ borrowed: 0, pending: 0 });
  });
});

describe('odd answers', () => {
  it('rejected promise', async () => {
    const { pool, fake } = poolWith((r) => (r.id === 1 ? Promise.reject(new Error('x')) : true));
    await (await pool.acquire()).release();
    const l = await pool.acquire();
    expect(l.value.id).toBe(2);
    expect(fake.destroyedIds()).toEqual([1]);
    await l.release();
  });
  it('sync-calling thenable yes', async () => {
    const { pool } = poolWith(() => ({ then: (ok: (v: unknown) => void) => ok(true) }));
    await (await pool.acquire()).release();
    const l = await pool.acquire();
    expect(l.value.id).toBe(1);
    await l.release();
  });
  it('thenable whose then throws', async () => {
    const { pool } = poolWith((r) =>
      r.id === 1
        ? {
            then: () => {
              throw new Error('bad then');
            },
          }
        : true,
    );
    await (await pool.acquire()).release();
    const l = await pool.acquire();
    expect(l.value.id).toBe(2);
    await l.release();
  });
  it('close() in validate + thenable whose then throws: refused with PoolClosedError, resource destroyed', async () => {
    let closing: Promise<void> | undefined;
    let armed = false;
    const { pool, fake } = poolWith((_r, p) => {
      if (!armed) return true;
      closing = p.close();
      return {
        then: () => {
          throw new Error('bad then');
        },
      };
    });
    await (await pool.acquire()).release();
    armed = true;
    const r = await settle(pool.acquire());
    expect(r).toMatchObject({ ok: false, e: expect.stringMatching(/closed/) });
    await closing;
    expect(fake.destroyedIds()).toEqual([1]);
  });
  it('close() in validate + rejected promise: refused, no unhandled rejection', async () => {
    let closing: Promise<void> | undefined;
    let armed = false;
    const { pool, fake } = poolWith((_r, p) => (armed ? ((closing = p.close()), Promise.reject(new Error('nope'))) : true));
    await (await pool.acquire()).release();
    armed = true;
    await expect(pool.acquire()).rejects.toThrow(/closed/);
    await closing;
    expect(fake.destroyedIds()).toEqual([1]);
  });
  it('close() in validate while another lease is out', async () => {
    let closing: Promise<void> | undefined;
    let armed = false;
    const { pool, fake } = poolWith((_r, p) => (armed ? ((closing = p.close()), true) : true), { max: 2 });
    const [l1, l2] = await Promise.all([pool.acquire(), pool.acquire()]);
    await l1.release();
    armed = true;
    await expect(pool.acquire()).rejects.toThrow(/closed/);
    await l2.release();
    await closing;
    expect(fake.destroyedIds().sort()).toEqual([1, 2]);
  });
});

describe('expiry', () => {
  it('maxUses 2 with validate', async () => {
    const { pool, fake } = poolWith(() => true, { maxUses: 2 });
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) {
      const l = await pool.acquire();
      ids.push(l.value.id);
      await l.release();
    }
    expect(ids).toEqual([1, 1, 2, 2, 3, 3]);
    expect(fake.destroyedIds()).toEqual([1, 2, 3]);
  });
  it('maxLifetimeMs with validate: expired never validated nor lent', async () => {
    const asked: number[] = [];
    const { pool } = poolWith((r) => (asked.push(r.id), true), { maxLifetimeMs: 20, idleTimeoutMs: 0 });
    await (await pool.acquire()).release();
    await sleep(25);
    const l = await pool.acquire();
    expect(l.value.id).toBe(2);
    expect(asked).toEqual([]);
    await l.release();
  });
});
