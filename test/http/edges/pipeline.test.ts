import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { scoped, requestSignal, requestScope } from '../../../adapters/http/index.js';
import { currentScope, inspect, track } from '../../../src/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { closeServer, listen, newPool, nodeServer, openScopes, raw, sleep, unreleased } from './util.js';

useCleanCustodian({ sites: 'always' });

describe('HTTP/1.1 pipelining through scoped()', () => {
  let server: Server;
  let collected: ReturnType<typeof collectReports>;
  beforeEach(() => {
    collected = collectReports();
  });
  afterEach(async () => {
    collected.stop();
    if (server) await closeServer(server);
  });

  it('three pipelined requests each get their own scope; reports are not misattributed', async () => {
    allowLeaks();
    const { pool } = newPool();
    const seen: { path: string; scopeOk: boolean }[] = [];
    server = nodeServer(
      scoped(async (req, res) => {
        const path = req.url ?? '';
        const mine = currentScope();
        const delay = path === '/a' ? 60 : path === '/b' ? 30 : 0;
        await pool.acquire(); // leak
        await sleep(delay);
        track({ path }, { kind: 'marker', label: path, release: () => {} });
        seen.push({ path, scopeOk: mine === requestScope(req) && currentScope() === mine });
        res.end(path);
      }),
    );
    const port = await listen(server);
    const c = raw(port);
    c.socket.write(
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    await c.closed;
    expect(c.data().match(/HTTP\/1.1 200/g)?.length).toBe(3);
    await openScopes();
    expect(seen.every((s) => s.scopeOk)).toBe(true);
    const reports = unreleased(collected.reports);
    expect(reports).toHaveLength(3);
    for (const r of reports) {
      const marker = r.resources.find((x) => x.kind === 'marker');
      expect(r.scope.name).toBe(`GET ${marker?.label}`);
      expect(r.resources).toHaveLength(2);
    }
    expect(pool.stats()).toMatchObject({ borrowed: 0 });
    await pool.close();
  });

  it('client resets the socket while pipelined responses are queued behind a hung one: every scope closes and leases are destroyed', async () => {
    allowLeaks();
    const { pool, destroyed } = newPool();
    let arrived = 0;
    server = nodeServer(
      scoped(async (req, res) => {
        arrived++;
        const lease = await pool.acquire({ signal: requestSignal(req) });
        void lease;
        if (req.url === '/hang') {
          await new Promise<void>((r) => requestSignal(req).addEventListener('abort', () => r()));
          return;
        }
        // holds lease (never releases), ends response (queued behind /hang)
        res.end('queued');
        await new Promise<void>((r) => requestSignal(req).addEventListener('abort', () => r()));
      }),
    );
    const port = await listen(server);
    const c = raw(port);
    c.socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\nGET /q1 HTTP/1.1\r\nHost: x\r\n\r\nGET /q2 HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle(
      async () => arrived,
      (n) => n === 3,
      2000,
    );
    expect(arrived).toBe(3);
    await sleep(20);
    c.socket.resetAndDestroy();
    await c.closed;
    const open = await openScopes();
    expect(open, JSON.stringify(inspect().scopes.oldest.map((s) => s.name))).toBe(0);
    await settle(
      async () => destroyed.length,
      (n) => n === 3,
      2000,
    );
    expect(destroyed).toHaveLength(3);
    expect(pool.stats()).toMatchObject({ borrowed: 0 });
    await pool.close();
  });

  it('pipelined: a request whose body is still arriving when the next is queued', async () => {
    allowLeaks();
    const { pool } = newPool();
    server = nodeServer(
      scoped(async (req, res) => {
        await using l = await pool.acquire({ signal: requestSignal(req) });
        void l;
        let body = '';
        for await (const chunk of req) body += chunk;
        res.end(`${req.url}:${body}`);
      }),
    );
    const port = await listen(server);
    const c = raw(port);
    c.socket.write('POST /p1 HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc');
    await sleep(20);
    c.socket.write('defGET /p2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await c.closed;
    expect(c.data()).toContain('/p1:abcdef');
    expect(c.data()).toContain('/p2:');
    await openScopes();
    expect(collected.reports).toEqual([]);
    await pool.close();
  });
});
