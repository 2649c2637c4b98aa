import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request as httpRequest, type Server, type Agent } from 'node:http';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { scoped, requestSignal, requestScope } from '../../../adapters/http/index.js';
import { configure, currentScope, inspect } from '../../../src/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { closeServer, listen, newPool, nodeServer, openScopes, raw, sleep } from './util.js';

useCleanCustodian({ sites: 'always' });
const httpStats = () => inspect().adapters.find((a) => a.name === 'custodian/http') as unknown as Record<string, number>;

function get(port: number, path: string, agent: Agent | false = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('scoped() edge cases', () => {
  let server: Server | undefined;
  let collected: ReturnType<typeof collectReports>;
  beforeEach(() => {
    collected = collectReports();
  });
  afterEach(async () => {
    collected.stop();
    if (server) await closeServer(server);
    server = undefined;
  });

  it('a handler that calls res.destroy(): lease destroyed, scope closed', async () => {
    allowLeaks();
    const { pool, destroyed } = newPool();
    let reason: unknown;
    server = nodeServer(
      scoped(async (req, res) => {
        const signal = requestSignal(req);
        await pool.acquire();
        res.destroy();
        await new Promise((r) => signal.addEventListener('abort', r));
        reason = signal.reason;
      }),
    );
    const port = await listen(server);
    await get(port, '/d').catch(() => {});
    await openScopes();
    await settle(
      async () => destroyed.length,
      (n) => n === 1,
    );
    expect(destroyed).toHaveLength(1);
    expect(pool.stats()).toMatchObject({ borrowed: 0 });
    expect(String((reason as Error | undefined)?.message)).toContain('the response was destroyed');
    await pool.close();
  });

  it('a response never ended, no timeout: reported by the stale-scope check with what it holds', async () => {
    allowLeaks();
    configure({ staleScopeMs: 200 });
    const { pool } = newPool();
    server = nodeServer(
      scoped(async (req) => {
        await pool.acquire({ signal: requestSignal(req) });
        await new Promise((r) => requestSignal(req).addEventListener('abort', r));
      }),
    );
    const port = await listen(server);
    const c = raw(port);
    c.socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n');
    const stale = await settle(
      async () => collected.reports.filter((r) => r.type === 'stale-scope'),
      (s) => s.length > 0,
      3000,
    );
    expect(stale).toHaveLength(1);
    expect(stale[0]).toMatchObject({ scope: { name: 'GET /hang' } });
    expect((stale[0] as { resources: readonly unknown[] }).resources).toHaveLength(1);
    c.socket.destroy();
    await openScopes();
    await pool.close();
  });

  it('listener settles long after res.end() still holding a lease, then releases: no report', async () => {
    const { pool, destroyed } = newPool();
    server = nodeServer(
      scoped(async (_req, res) => {
        const lease = await pool.acquire();
        res.end('early');
        await sleep(100);
        expect(currentScope()?.state).toBe('open');
        await lease.release();
      }),
    );
    const port = await listen(server);
    expect((await get(port, '/late')).body).toBe('early');
    await openScopes();
    expect(collected.reports).toEqual([]);
    expect(destroyed).toEqual([]);
    await pool.close();
  });

  it('sync res.end() before the listener returns (non-async listener) with a leak: reclaimed, reported once', async () => {
    allowLeaks();
    const { pool, destroyed } = newPool();
    server = nodeServer(
      scoped((req, res) => {
        void pool.acquire().then(
          () => {},
          () => {}, // refused: the scope closed first
        );
        res.end('x');
      }),
    );
    const port = await listen(server);
    await get(port, '/sync');
    await openScopes();
    await sleep(20);
    // The acquire might finish after the scope closed: must not leak a borrowed resource.
    expect(pool.stats()).toMatchObject({ borrowed: 0 });
    expect(destroyed).toEqual([]);
    await pool.close();
  });

  it('requestSignal outside a request throws a TypeError', () => {
    expect(() => requestSignal({})).toThrow(TypeError);
    expect(requestScope({})).toBeUndefined();
  });

  it('the stats add up after aborts', async () => {
    allowLeaks();
    const before = { ...httpStats() };
    const { pool } = newPool();
    server = nodeServer(
      scoped(async (req, res) => {
        await using l = await pool.acquire({ signal: requestSignal(req) });
        void l;
        if (req.url === '/abort') {
          res.write('x');
          await new Promise((r) => requestSignal(req).addEventListener('abort', r));
          return;
        }
        res.end('ok');
      }),
    );
    const port = await listen(server);
    await get(port, '/ok');
    const c = raw(port);
    c.socket.write('GET /abort HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle(
      async () => c.data(),
      (d) => d.length > 0,
    );
    c.socket.resetAndDestroy();
    await openScopes();
    const after = httpStats();
    expect(Number(after.inFlight) - Number(before.inFlight)).toBe(0);
    expect(Number(after.finished) - Number(before.finished)).toBe(1);
    expect(Number(after.clientGone) - Number(before.clientGone)).toBe(1);
    await pool.close();
  });
});
