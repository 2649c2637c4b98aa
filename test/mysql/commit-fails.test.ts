/**
 * COMMIT fails with an error that leaves the connection usable (injected: the server's own are
 * hard to provoke); while the adapter's ROLLBACK is on its way, the scope ends. The connection must
 * stay borrowed until the ROLLBACK has answered, and be reset on its way back.
 */
import type { Connection } from 'mysql2/promise';
import { afterAll, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { createMysql, type Mysql } from '../../adapters/mysql/index.js';
import { withScope } from '../../src/index.js';
import { sleep, useCleanCustodian } from '../helpers.js';
import { describeWithServer, MYSQL, probeMysql } from '../integration/servers.js';

const server = await probeMysql();
useCleanCustodian({ leaks: 'reclaim' });
let db: Mysql | undefined;
afterAll(async () => db?.close({ timeout: 1000 }));

type Cb = (e: unknown, r?: unknown, f?: unknown) => void;
describeWithServer(server, 'custodian/mysql: a COMMIT that fails', () => {
  it('a scope that ends while a failed commit rolls back does not get the connection back mid-ROLLBACK, unreset', async () => {
    allowLeaks();
    const conns: Connection[] = [];
    db = createMysql({ ...MYSQL, name: 'review-abandon', pool: { max: 1 }, onConnect: (c) => void conns.push(c) });
    await db.query('SELECT 1');
    const base = (conns[0] as unknown as { connection: { query: (s: unknown, v: unknown, cb: Cb) => unknown } }).connection;
    const real = base.query.bind(base);
    let rollbackPending = false;
    base.query = (sql, values, cb) => {
      if (sql === 'COMMIT') {
        // a non-fatal COMMIT error (as a Galera certification failure or ER_ERROR_DURING_COMMIT would be)
        setTimeout(() => cb(Object.assign(new Error('commit failed'), { code: 'ER_ERROR_DURING_COMMIT', errno: 1180 })), 5);
        return undefined;
      }
      if (sql === 'ROLLBACK' && !rollbackPending) {
        rollbackPending = true;
        return real('DO SLEEP(0.3)', undefined, () =>
          real('ROLLBACK', undefined, (e: unknown, r: unknown, f: unknown) => {
            rollbackPending = false;
            cb(e, r, f);
          }),
        );
      }
      return real(sql, values, cb);
    };
    const handed: { borrowedDuringRollback?: number } = {};
    await withScope(async () => {
      const tx = await db!.begin();
      tx.commit().catch(() => {});
      await sleep(50); // COMMIT failed, #abandon's ROLLBACK is on its way; the scope ends now
    });
    handed.borrowedDuringRollback = rollbackPending ? db.stats().borrowed : -1;
    expect(rollbackPending).toBe(true);
    // observed: 0 — the pool holds the connection as idle (and would lend it) while ROLLBACK is still running on it
    expect(handed.borrowedDuringRollback).toBe(1);
    await sleep(400);
  });
});
