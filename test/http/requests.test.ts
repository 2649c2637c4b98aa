/**
 * custodian/http against real servers on 127.0.0.1: node:http through scoped(), Express through
 * custodianExpress(), Fastify through custodianFastify; the same rules for all three.
 */
import { request as httpRequest, Agent } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { heapAfterGc, theilSen } from '../../src/internal.js';
import { inspect, type LeakReport } from '../../src/index.js';
import { collectReports, settle, sitesIn, useCleanCustodian } from '../helpers.js';
import {
  expectConcurrent,
  FLAVOURS,
  get,
  keepAlive,
  newProbe,
  startApp,
  STREAM_TOTAL,
  type App,
  type Flavour,
  type Probe,
} from './apps.js';

const siteOf = sitesIn(new URL('./apps.ts', import.meta.url).href);

useCleanCustodian({ sites: 'always' });

type Unreleased = Extract<LeakReport, { type: 'unreleased' }>;
const unreleased = (reports: readonly LeakReport[]) => reports.filter((r): r is Unreleased => r.type === 'unreleased');

/** Waits until no scope named like a request of this app is open. */
const noRequestScopes = () =>
  settle(
    async () => inspect().scopes.open,
    (open) => open === 0,
    5_000,
  );

describe.each(FLAVOURS)('%s', (flavour: Flavour) => {
  let probe: Probe;
  let app: App;
  let agent: Agent;
  let collected: ReturnType<typeof collectReports>;

  beforeEach(async () => {
    probe = newProbe();
    app = await startApp(flavour, probe);
    agent = keepAlive();
    collected = collectReports();
  });

  afterEach(async () => {
    collected.stop();
    agent.destroy();
    await app.close();
    await noRequestScopes();
    await probe.pool.close();
    expect(probe.errors).toEqual([]);
  });

  const routeName = (path: string, template: string) => (flavour === 'node' ? `GET ${path}` : `GET ${template}`);

  describe('a forgotten pooled lease', () => {
    it("is reported once per request, with the handler's file:line, and the connection goes back to the pool", async () => {
      allowLeaks();
      for (let i = 0; i < 3; i++) expect((await get(`${app.url}/leak?i=${i}`, agent)).status).toBe(200);
      await noRequestScopes();
      const reports = unreleased(collected.reports);
      expect(reports).toHaveLength(3);
      for (const report of reports) {
        expect(report.scope.name).toBe('GET /leak'); // no query string
        expect(report.cancelled).toBe(false);
        expect(report.resources).toHaveLength(1);
        expect(report.resources[0]?.site).toBe(siteOf('leak', 'acquire'));
        expect(report.resources[0]?.kind).toBe('test connection');
      }
      expect(probe.destroyed).toEqual([]); // reclaimed: given back, not destroyed
      expect(probe.pool.stats()).toMatchObject({ borrowed: 0 });
    });

    it('the fixed twin reports nothing', async () => {
      for (let i = 0; i < 3; i++) expect((await get(`${app.url}/fixed`, agent)).body).toMatch(/^fixed \d+$/);
      await noRequestScopes();
      expect(collected.reports).toEqual([]);
    });

    it.skipIf(flavour === 'node')('survives a body parser between the integration and the route', async () => {
      const answer = await get(`${app.url}/fixed`, agent, 'POST', JSON.stringify({ a: 1 }));
      expect(answer.body).toMatch(/^fixed \d+ \{"a":1\}$/);
      await noRequestScopes();
      expect(collected.reports).toEqual([]);
    });
  });

  describe('a streaming response', () => {
    it('keeps its scope open until the last chunk of a 5 MB body, read slowly', async () => {
      let received = 0;
      let sawOpen = 0;
      let mark = 1024 * 1024;
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${app.url}/stream`, { agent }, (res) => {
          res.on('data', (chunk: Buffer) => {
            received += chunk.length;
            if (received < STREAM_TOTAL && received >= mark) {
              mark += 1024 * 1024;
              // Every MB: pause, and check the request's scope is still open meanwhile.
              res.pause();
              setTimeout(() => {
                if (inspect().scopes.oldest.some((s) => s.name === routeName('/stream', '/stream') && s.state === 'open')) sawOpen++;
                res.resume();
              }, 5);
            }
          });
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      expect(received).toBe(STREAM_TOTAL);
      expect(sawOpen).toBeGreaterThanOrEqual(4);
      expect(probe.streamStates.length).toBeGreaterThanOrEqual(80);
      expect(new Set(probe.streamStates)).toEqual(new Set(['open']));
      await noRequestScopes();
      expect(collected.reports).toEqual([]);
      expect(probe.pool.stats()).toMatchObject({ borrowed: 0 });
    });
  });

  describe('a client that goes away mid-response', () => {
    it('cancels the scope: its signal aborts, the held connection is destroyed, not returned', async () => {
      allowLeaks();
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${app.url}/abort`, { agent: false }, (res) => {
          res.once('data', () => {
            req.destroy(); // gone, with the response half sent
            resolve();
          });
        });
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.end();
        setTimeout(() => reject(new Error('no first chunk')), 5_000).unref();
      });
      const seen = await settle(
        async () => probe.abort,
        (a) => a?.acquireAfter !== undefined,
      );
      await noRequestScopes();
      expect(seen?.reason).toMatchObject({ name: 'AbortError' });
      expect(String((seen?.reason as Error).message)).toMatch(/the connection closed before the response finished \(the client went away/);
      // Acquiring after the cancellation fails: the request is over.
      expect(seen?.acquireAfter).toMatchObject({ name: expect.stringMatching(/^(AbortError|ScopeClosedError)$/) });
      await settle(
        async () => probe.destroyed,
        (d) => d.includes(seen?.heldId as number),
      );
      expect(probe.destroyed).toEqual([seen?.heldId]);
      const reports = unreleased(collected.reports);
      expect(reports).toHaveLength(1);
      expect(reports[0]).toMatchObject({ cancelled: true, scope: { name: 'GET /abort' } });
      expect(probe.pool.stats()).toMatchObject({ borrowed: 0, available: 0 });
    });
  });

  describe('1,000 concurrent requests', () => {
    it('each get their own scope, whatever the interleaving', async () => {
      allowLeaks();
      const n = 1_000;
      expectConcurrent(probe, n);
      const wide = new Agent({ keepAlive: false, maxSockets: Infinity });
      const ids = Array.from({ length: n }, (_, i) => String(i + 1));
      try {
        const answers = await Promise.all(ids.map((id) => get(`${app.url}/c/${id}`, wide)));
        expect(answers.map((a) => a.body)).toEqual(ids);
      } finally {
        wide.destroy();
      }
      await noRequestScopes();
      expect(probe.crossed).toBe(0);
      const reports = unreleased(collected.reports);
      expect(reports).toHaveLength(n);
      // One marker per report, each under a scope of its own, every id exactly once.
      expect(reports.every((r) => r.resources.length === 1)).toBe(true);
      expect(new Set(reports.map((r) => r.scope.id)).size).toBe(n);
      expect(reports.map((r) => r.resources[0]?.label).sort()).toEqual([...ids].sort());
      if (flavour === 'node') for (const r of reports) expect(r.scope.name).toBe(`GET /c/${r.resources[0]?.label}`);
      else for (const r of reports) expect(r.scope.name).toBe('GET /c/:id');
    });
  });

  describe.skipIf(flavour === 'node')('errors', () => {
    it.each(['throw', 'reject', 'next'])('%s: reaches the error handler, which runs in the request scope', async (path) => {
      const answer = await get(`${app.url}/${path}`, agent);
      expect(answer.status).toBe(500);
      expect(answer.body).toMatch(/^handled: /);
      expect(probe.errorInScope).toEqual([true]);
      await noRequestScopes();
      expect(collected.reports).toEqual([]);
    });
  });

  describe('the timeout option', () => {
    it('cancels the scope, destroys what it holds and answers 503', async () => {
      allowLeaks();
      await app.close();
      app = await startApp(flavour, probe, { timeout: 50 });
      const answer = await get(`${app.url}/timeout`, agent);
      expect(answer.status).toBe(503);
      await settle(
        async () => probe.timeoutReason,
        (r) => r !== undefined,
      );
      expect(probe.timeoutReason).toMatchObject({ name: 'TimeoutError', code: 'ERR_CUSTODIAN_SCOPE_TIMEOUT', timeoutMs: 50 });
      await noRequestScopes();
      await settle(
        async () => probe.destroyed.length,
        (d) => d === 1,
      );
      expect(unreleased(collected.reports)).toMatchObject([{ cancelled: true }]);
    });
  });

  describe('inspectHandler()', () => {
    it('answers inspect() as JSON, not cached, showing the request that asks', async () => {
      const answer = await get(`${app.url}/debug/custodian`, agent);
      expect(answer.status).toBe(200);
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
      expect(answer.headers['cache-control']).toBe('no-store');
      const snapshot = JSON.parse(answer.body) as ReturnType<typeof inspect>;
      expect(snapshot.scopes.oldest.map((s) => s.name)).toContain('GET /debug/custodian');
      expect(snapshot.adapters.find((a) => a.name === 'custodian/http')).toMatchObject({ kind: 'http requests' });
    });
  });

  describe('10,000 requests', () => {
    it('leave no scope open and the heap flat', async () => {
      const total = 10_000;
      const step = 2_000;
      const xs: number[] = [];
      const ys: number[] = [];
      let done = 0;
      const run = async (count: number) => {
        let left = count;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (left-- > 0) {
              const answer = await get(`${app.url}/fixed`, agent);
              if (answer.status !== 200) throw new Error(`status ${answer.status}`);
              done++;
            }
          }),
        );
      };
      await run(step); // warm-up: JIT, pools, agent sockets
      for (let k = 0; k < total / step; k++) {
        await run(step);
        await noRequestScopes();
        xs.push(done);
        ys.push(await heapAfterGc(2));
      }
      expect(inspect().scopes.open).toBe(0);
      expect(collected.reports).toEqual([]);
      const fit = theilSen(xs, ys);
      // A scope kept per request would be well over 1 KB each; a flat heap wanders by tens of KB in all.
      expect(
        fit.slope,
        `heap growth ${fit.slope.toFixed(1)} B/request (${ys.map((y) => (y / 1e6).toFixed(2)).join(', ')} MB)`,
      ).toBeLessThan(100);
    }, 120_000);
  });
});
