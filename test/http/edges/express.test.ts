import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { custodianExpress, requestSignal, requestScope } from '../../../adapters/http/index.js';
import { configure, currentScope, inspect } from '../../../src/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { closeServer, get, listen, newPool, openScopes, raw, sleep, unreleased } from './util.js';

useCleanCustodian({ sites: 'always' });

describe('Express', () => {
  let server: Server | undefined;
  let collected: ReturnType<typeof collectReports>;
  const { pool } = newPool();
  beforeEach(() => {
    collected = collectReports();
  });
  afterEach(async () => {
    collected.stop();
    if (server) await closeServer(server);
    server = undefined;
    await openScopes();
  });

  function app(timeout?: number) {
    const a = express();
    a.use(custodianExpress(timeout === undefined ? {} : { timeout }));
    const router = express.Router();
    router.get('/users/:id', async (_req, res) => {
      await pool.acquire(); // leak
      res.send('u');
    });
    a.use('/api', router);
    const sub = express();
    sub.get('/items/:id', async (_req, res) => {
      await pool.acquire(); // leak
      res.send('i');
    });
    a.use('/v1', sub);
    a.get('/hang/:id', async (req, res) => {
      await pool.acquire({ signal: requestSignal(req) });
      res.write('partial');
      await new Promise((r) => requestSignal(req).addEventListener('abort', r));
    });
    a.get('/slow/:id', async (req) => {
      await pool.acquire({ signal: requestSignal(req) });
      await new Promise((r) => requestSignal(req).addEventListener('abort', r));
    });
    const boom = new Error('boom');
    a.get('/chain', (_req, _res, next: NextFunction) => next(boom));
    a.get('/sync', () => {
      throw boom;
    });
    const seen: unknown[] = [];
    a.use((err: unknown, req: Request, _res: Response, next: NextFunction) => {
      seen.push({ first: err === boom, inScope: currentScope() === requestScope(req) });
      next(err);
    });
    a.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
      seen.push({ second: err === boom, inScope: currentScope() === requestScope(req) });
      res.status(500).send('handled');
    });
    return { a, seen };
  }

  it('Router and sub-app: reports are named after the full template', async () => {
    allowLeaks();
    const { a } = app();
    server = createServer(a);
    const port = await listen(server);
    await get(port, '/api/users/42');
    await get(port, '/v1/items/7');
    await openScopes();
    expect(unreleased(collected.reports).map((r) => r.scope.name)).toEqual(['GET /api/users/:id', 'GET /v1/items/:id']);
  });

  it('next(err) chain through two error handlers and sync throws: the same error, in scope', async () => {
    const { a, seen } = app();
    server = createServer(a);
    const port = await listen(server);
    expect((await get(port, '/chain')).body).toBe('handled');
    expect((await get(port, '/sync')).body).toBe('handled');
    expect(seen).toEqual([
      { first: true, inScope: true },
      { second: true, inScope: true },
      { first: true, inScope: true },
      { second: true, inScope: true },
    ]);
    await openScopes();
    expect(collected.reports).toEqual([]);
  });

  it('client gone: the cancelled report is named after the route template, like every other report of that route', async () => {
    allowLeaks();
    const { a } = app();
    server = createServer(a);
    const port = await listen(server);
    const c = raw(port);
    c.socket.write('GET /hang/42 HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle(
      async () => c.data(),
      (d) => d.includes('partial'),
    );
    c.socket.resetAndDestroy();
    await openScopes();
    const r = unreleased(collected.reports);
    expect(r).toHaveLength(1);
    expect(r[0]?.cancelled).toBe(true);
    expect(r[0]?.scope.name).toBe('GET /hang/:id');
  });

  it('timeout: the cancelled report is named after the route template', async () => {
    allowLeaks();
    const { a } = app(50);
    server = createServer(a);
    const port = await listen(server);
    expect((await get(port, '/slow/42')).status).toBe(503);
    await openScopes();
    const r = unreleased(collected.reports);
    expect(r).toHaveLength(1);
    expect(r[0]?.scope.name).toBe('GET /slow/:id');
  });

  it('stale-scope report of a routed, hung request is named after the template', async () => {
    allowLeaks();
    configure({ staleScopeMs: 200 });
    const { a } = app();
    server = createServer(a);
    const port = await listen(server);
    const c = raw(port);
    c.socket.write('GET /slow/42 HTTP/1.1\r\nHost: x\r\n\r\n');
    const stale = await settle(
      async () => collected.reports.filter((r) => r.type === 'stale-scope'),
      (s) => s.length > 0,
    );
    c.socket.destroy();
    expect(stale[0]).toMatchObject({ scope: { name: 'GET /slow/:id' } });
  });

  it('pipelined requests queued behind a hung one, then the client resets: every scope closes', async () => {
    allowLeaks();
    const a = express();
    a.use(custodianExpress());
    a.get('/hang', (req) => new Promise((r) => requestSignal(req).addEventListener('abort', r)));
    a.get('/q', async (req, res) => {
      await pool.acquire({ signal: requestSignal(req) });
      res.send('q');
    });
    server = createServer(a);
    const port = await listen(server);
    const c = raw(port);
    c.socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\nGET /q HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(100);
    c.socket.resetAndDestroy();
    const open = await openScopes();
    expect(open, JSON.stringify(inspect().scopes.oldest.map((s) => s.name))).toBe(0);
  });
});
