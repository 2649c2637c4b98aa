import { describe, expect, it } from 'vitest';
import { createServer, request as httpRequest, Agent, type Server } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { custodianExpress, custodianFastify, scoped, requestSignal } from '../../../adapters/http/index.js';
import { inspect, type LeakReport } from '../../../src/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { listen, newPool, sleep } from './util.js';

useCleanCustodian({ sites: 'always' });

type Flavour = 'node' | 'express' | 'fastify';

describe.each(['node', 'express', 'fastify'] as Flavour[])('%s: 1,000 concurrent requests with random aborts', (flavour) => {
  it('zero open scopes afterwards, every lease released exactly once, pool stats add up', async () => {
    allowLeaks();
    const collected = collectReports();
    const { pool, destroyed, created } = newPool({ max: 20, createDelay: 2 });
    const handlerErrors: unknown[] = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const handler = async (req: object, send: (s: string) => void) => {
      const signal = requestSignal(req);
      try {
        if (Math.random() < 0.2) {
          const leaked = await pool.acquire({ signal }); // leak some: reclaimed (or destroyed if aborted)
          for (let i = 0; i < 3; i++) await sleep(Math.random() * 5);
          send(`leak ${leaked.value.id}`);
          return;
        }
        await using l = await pool.acquire({ signal });
        for (let i = 0; i < 3; i++) await sleep(Math.random() * 5);
        send(`ok ${l.value.id}`);
      } catch (e) {
        if (!signal.aborted) handlerErrors.push(e);
      }
    };
    let server: Server;
    let close: () => Promise<void>;
    if (flavour === 'node') {
      server = createServer(scoped((req, res) => handler(req, (s) => res.end(s))));
      close = () =>
        new Promise((r) => {
          server.closeAllConnections();
          server.close(() => r());
        });
    } else if (flavour === 'express') {
      const app = express();
      app.use(custodianExpress());
      app.get('/x', (req, res) => handler(req, (s) => void res.send(s)));
      server = createServer(app);
      close = () =>
        new Promise((r) => {
          server.closeAllConnections();
          server.close(() => r());
        });
    } else {
      const app = Fastify();
      await app.register(custodianFastify, {});
      app.get('/x', (request, reply) => handler(request, (s) => void reply.send(s)));
      await app.ready();
      server = app.server;
      close = () => app.close();
    }
    const port =
      flavour === 'fastify'
        ? await (async () => {
            await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
            return (server.address() as { port: number }).port;
          })()
        : await listen(server);
    const agent = new Agent({ keepAlive: true, maxSockets: 200 });
    const n = 1000;
    let aborts = 0;
    await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<void>((resolve) => {
            const req = httpRequest({ host: '127.0.0.1', port, path: `/x?i=${i}`, agent }, (res) => {
              res.resume();
              res.on('end', resolve);
              res.on('error', () => resolve());
              res.on('aborted', () => resolve());
            });
            req.on('error', () => resolve());
            req.on('close', () => resolve());
            req.end();
            if (Math.random() < 0.3) {
              aborts++;
              setTimeout(() => req.destroy(), Math.random() * 30);
            }
          }),
      ),
    );
    agent.destroy();
    const open = await settle(
      async () => inspect().scopes.open,
      (o) => o === 0,
      5000,
    );
    await sleep(50);
    const stats = pool.stats();
    const http = inspect().adapters.find((a) => a.name === 'custodian/http') as unknown as Record<string, number>;
    collected.stop();
    process.off('unhandledRejection', onUnhandled);
    await close();
    // Invariants
    expect(open).toBe(0);
    expect(unhandled).toEqual([]);
    expect(handlerErrors.map(String)).toEqual([]);
    expect(new Set(destroyed).size).toBe(destroyed.length); // destroyed at most once
    expect(stats.borrowed).toBe(0);
    expect(stats.pending).toBe(0);
    expect(created.length).toBe(destroyed.length + stats.available + stats.destroying);
    expect(http.inFlight).toBe(0);
    const reports = collected.reports.filter((r): r is Extract<LeakReport, { type: 'unreleased' }> => r.type === 'unreleased');
    // a request reported as cancelled was aborted by its client
    const cancelledIds = reports.filter((r) => r.cancelled).length;
    expect(cancelledIds).toBeLessThanOrEqual(aborts);
    await pool.close();
  }, 60_000);
});
