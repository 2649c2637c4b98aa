import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { custodianFastify, requestSignal, requestScope } from '../../../adapters/http/index.js';
import { currentScope, inspect } from '../../../src/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { get, newPool, openScopes, raw, sleep, unreleased } from './util.js';

useCleanCustodian({ sites: 'always' });

describe('Fastify', () => {
  let app: FastifyInstance;
  let port: number;
  let collected: ReturnType<typeof collectReports>;
  const { pool, destroyed } = newPool();
  const hookErrors: unknown[] = [];
  const inScopeAtStart: boolean[] = [];
  const boom = new Error('boom');
  const handled: unknown[] = [];

  beforeEach(async () => {
    collected = collectReports();
    app = Fastify();
    await app.register(custodianFastify, {});
    app.addHook('onRequest', async (request) => {
      if (request.url.startsWith('/hooks')) await pool.acquire(); // leak in onRequest
    });
    app.addHook('preHandler', async (request) => {
      if (request.url.startsWith('/hooks')) await pool.acquire(); // leak in preHandler
    });
    app.addHook('onSend', async (request, _reply, payload) => {
      if (request.url.startsWith('/hooks')) await pool.acquire(); // leak in onSend
      return payload;
    });
    app.addHook('onResponse', async (request) => {
      if (!request.url.startsWith('/onresponse')) return;
      inScopeAtStart.push(currentScope() !== undefined && currentScope() === requestScope(request));
      try {
        await sleep(5); // e.g. an access-log write
        await using l = await pool.acquire();
        void l;
      } catch (e) {
        hookErrors.push(e);
      }
    });
    app.get('/hooks', async () => 'ok');
    app.get('/onresponse', async () => 'ok');
    app.get('/hijack', async (request, reply) => {
      reply.hijack();
      const l = await pool.acquire({ signal: requestSignal(request) });
      await sleep(10);
      reply.raw.end('hijacked');
      await l.release();
    });
    app.get('/stream', async (request, reply) => {
      const scope = requestScope(request);
      let n = 0;
      const body = new Readable({
        read() {
          setTimeout(() => this.push(n++ < 1000 ? Buffer.alloc(16 * 1024, 97) : null), 1);
        },
      });
      await pool.acquire({ signal: requestSignal(request) }); // held while streaming
      void scope;
      return reply.send(body);
    });
    app.get('/throw', () => {
      throw boom;
    });
    app.get('/reject', async () => {
      await null;
      throw boom;
    });
    app.setErrorHandler((error, request, reply) => {
      handled.push({ same: error === boom, inScope: currentScope() === requestScope(request) });
      void reply.code(500).send('handled');
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as { port: number }).port;
  });

  afterEach(async () => {
    collected.stop();
    await app.close();
    await openScopes();
  });

  it('leases leaked in onRequest, preHandler and onSend hooks are one report of the request', async () => {
    allowLeaks();
    await get(port, '/hooks');
    await openScopes();
    const r = unreleased(collected.reports);
    expect(r).toHaveLength(1);
    expect(r[0]?.scope.name).toBe('GET /hooks');
    expect(r[0]?.resources).toHaveLength(3);
    for (const res of r[0]?.resources ?? []) expect(res.site).toMatch(/edges\/fastify\.test\.ts:\d+/);
  });

  it('an async onResponse hook runs in the scope until its first await; after it, the scope is closed and says so (as docs/http.md says)', async () => {
    hookErrors.length = 0;
    await get(port, '/onresponse');
    await sleep(50);
    await openScopes();
    expect(inScopeAtStart).toEqual([true]);
    expect(hookErrors).toHaveLength(1);
    expect(String(hookErrors[0])).toMatch(/ScopeClosedError: .*scope "GET \/onresponse".*it is closed/);
  });

  it('reply.hijack() with a lease released after raw end: no report', async () => {
    expect((await get(port, '/hijack')).body).toBe('hijacked');
    await openScopes();
    expect(collected.reports).toEqual([]);
  });

  it('errors reach setErrorHandler unchanged and in scope', async () => {
    handled.length = 0;
    await get(port, '/throw');
    await get(port, '/reject');
    expect(handled).toEqual([
      { same: true, inScope: true },
      { same: true, inScope: true },
    ]);
  });

  it('reply.send(stream) then the client resets mid-stream: held lease destroyed', async () => {
    allowLeaks();
    const before = destroyed.length;
    const c = raw(port);
    c.socket.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle(
      async () => c.data().length,
      (n) => n > 50_000,
    );
    c.socket.resetAndDestroy();
    await openScopes();
    await settle(
      async () => destroyed.length - before,
      (n) => n === 1,
    );
    expect(destroyed.length - before).toBe(1);
    expect(unreleased(collected.reports)).toMatchObject([{ cancelled: true, scope: { name: 'GET /stream' } }]);
  });

  it('pipelined requests queued behind a hung one, then reset: every scope closes', async () => {
    allowLeaks();
    // /hijack holds 10ms; use /stream as the slow first one
    const c = raw(port);
    c.socket.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /hooks HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle(
      async () => c.data().length,
      (n) => n > 50_000,
    );
    c.socket.resetAndDestroy();
    const open = await openScopes();
    expect(open, JSON.stringify(inspect().scopes.oldest.map((s) => s.name))).toBe(0);
  });
});
