/**
 * custodian/http's surface: bad options fail before any request is served, errors pass through
 * untouched, request scopes are roots, and the integrations do not stack.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { custodianExpress, custodianFastify, inspectHandler, requestScope, requestSignal, scoped } from '../../adapters/http/index.js';
import { currentScope, withScope, type Scope } from '../../src/index.js';
import { allowLeaks } from '../../adapters/vitest/index.js';
import { collectReports, collectWarnings, thrownBy, useCleanCustodian } from '../helpers.js';
import { get, keepAlive } from './apps.js';

useCleanCustodian();

async function serve(listener: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('bad options throw a TypeError naming the option, before any request', () => {
  it('scoped()', () => {
    expect(thrownBy(() => scoped('listener' as never))).toMatchObject({
      name: 'TypeError',
      message: expect.stringMatching(/^scoped\(\): listener must be a function/),
    });
    expect(thrownBy(() => scoped(() => {}, { timeout: 0 }))).toMatchObject({
      name: 'TypeError',
      message: expect.stringMatching(/option 'timeout'/),
    });
    expect(thrownBy(() => scoped(() => {}, { name: 'GET /' as never }))).toMatchObject({
      message: expect.stringMatching(/option 'name'.*a function/),
    });
    expect(thrownBy(() => scoped(() => {}, { timout: 5 } as never))).toMatchObject({
      message: expect.stringMatching(/unknown option 'timout'/),
    });
  });

  it('custodianExpress()', () => {
    expect(thrownBy(() => custodianExpress({ leaks: 'loud' as never }))).toMatchObject({
      name: 'TypeError',
      message: expect.stringMatching(/^custodianExpress\(\): option 'leaks'/),
    });
  });

  it('custodianFastify: register() rejects', async () => {
    const app = Fastify();
    await expect(app.register(custodianFastify, { timeout: -1 }).ready()).rejects.toMatchObject({
      name: 'TypeError',
      message: expect.stringMatching(/^custodianFastify: option 'timeout'/),
    });
    await app.close().catch(() => {});
  });

  it('inspectHandler()', () => {
    expect(thrownBy(() => inspectHandler({ maxScopes: -1 }))).toMatchObject({
      name: 'TypeError',
      message: expect.stringMatching(/option 'maxScopes'/),
    });
  });
});

describe('requestSignal() and requestScope()', () => {
  it('without an integration: requestScope is undefined and requestSignal says what to install', () => {
    const req = {};
    expect(requestScope(req)).toBeUndefined();
    expect(thrownBy(() => requestSignal(req))).toMatchObject({
      name: 'TypeError',
      message: expect.stringMatching(/install the integration first/),
    });
  });
});

describe('scoped()', () => {
  it('a listener that throws synchronously throws out of the wrapper unchanged, and the scope still closes with the response', async () => {
    const boom = new Error('boom');
    let scope: Scope | undefined;
    const handler = scoped((req: IncomingMessage, res: ServerResponse) => {
      scope = currentScope();
      res.end('partial');
      void req;
      throw boom;
    });
    let thrown: unknown;
    const app = await serve((req, res) => {
      try {
        handler(req, res);
      } catch (error) {
        thrown = error;
      }
    });
    try {
      expect((await get(app.url, keepAlive())).body).toBe('partial');
      expect(thrown).toBe(boom);
      await expect.poll(() => scope?.state).toBe('closed');
    } finally {
      await app.close();
    }
  });

  it('opens a root scope per request, even for a server started inside a scope, and uses name(req)', async () => {
    const seen: (Scope | undefined)[] = [];
    const handler = scoped(
      (req: IncomingMessage, res: ServerResponse) => {
        seen.push(currentScope());
        res.end();
      },
      { name: (req) => `custom ${req.method}` },
    );
    const app = await withScope(() => serve(handler), { name: 'outer' });
    try {
      await get(app.url, keepAlive());
      expect(seen[0]).toMatchObject({ name: 'custom GET', parent: undefined });
    } finally {
      await app.close();
    }
  });

  it('waits for the listener to settle after the response finished, so a release after res.end() is no leak', async () => {
    let release: () => void = () => {};
    const later = new Promise<void>((resolve) => (release = resolve));
    let scope: Scope | undefined;
    const app = await serve(
      scoped(async (_req: IncomingMessage, res: ServerResponse) => {
        scope = currentScope();
        res.end('early');
        await later;
      }),
    );
    try {
      expect((await get(app.url, keepAlive())).body).toBe('early');
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(scope?.state).toBe('open');
      release();
      await expect.poll(() => scope?.state).toBe('closed');
    } finally {
      await app.close();
    }
  });
});

describe('faults at the end of a request', () => {
  it('a release that throws when the request scope closes is reported, never an unhandled rejection', async () => {
    const warnings = collectWarnings();
    let scope: Scope | undefined;
    const app = await serve(
      scoped((_req: IncomingMessage, res: ServerResponse) => {
        scope = currentScope();
        scope?.defer(() => {
          throw new Error('release exploded');
        });
        res.end('ok');
      }),
    );
    try {
      expect((await get(app.url, keepAlive())).body).toBe('ok');
      await expect.poll(() => scope?.state).toBe('closed');
      await expect.poll(() => warnings.warnings.some((w) => w.code === 'CUSTODIAN_RELEASE_FAILED')).toBe(true);
      expect(warnings.warnings.find((w) => w.code === 'CUSTODIAN_RELEASE_FAILED')?.message).toMatch(/GET \//);
    } finally {
      warnings.stop();
      await app.close();
    }
  });

  it("under the 'throw' policy a leak is reported and the LeakError stays inside custodian", async () => {
    allowLeaks();
    const collected = collectReports();
    const app = await serve(
      scoped(
        (_req: IncomingMessage, res: ServerResponse) => {
          currentScope()?.track({}, { kind: 'test handle', release: () => {} });
          res.end('ok');
        },
        { leaks: 'throw' },
      ),
    );
    try {
      expect((await get(`${app.url}/strict`, keepAlive())).body).toBe('ok');
      await expect.poll(() => collected.reports.length).toBe(1);
      expect(collected.reports[0]).toMatchObject({ type: 'unreleased', policy: 'throw', scope: { name: 'GET /strict' } });
    } finally {
      collected.stop();
      await app.close();
    }
  });

  it('a release that hangs is given up after disposeTimeoutMs, and the request scope still closes', async () => {
    allowLeaks();
    const collected = collectReports();
    let scope: Scope | undefined;
    const app = await serve(
      scoped((_req: IncomingMessage, res: ServerResponse) => {
        scope = currentScope();
        scope?.defer(() => new Promise(() => {}));
        res.end('ok');
      }),
    );
    const { configure } = await import('../../src/index.js');
    configure({ disposeTimeoutMs: 20 });
    try {
      expect((await get(app.url, keepAlive())).body).toBe('ok');
      await expect.poll(() => scope?.state).toBe('closed');
      expect(collected.reports.map((r) => r.type)).toEqual(['release-timeout']);
    } finally {
      collected.stop();
      await app.close();
    }
  });

  it('a refused port: listening fails as it does without custodian, and no scope is opened', async () => {
    const first = await serve(scoped((_req: IncomingMessage, res: ServerResponse) => void res.end()));
    const port = Number(new URL(first.url).port);
    const second = createServer(scoped((_req: IncomingMessage, res: ServerResponse) => void res.end()));
    try {
      second.listen(port, '127.0.0.1');
      const [error] = (await once(second, 'error')) as [NodeJS.ErrnoException];
      expect(error.code).toBe('EADDRINUSE');
      const { inspect } = await import('../../src/index.js');
      expect(inspect().scopes.open).toBe(0);
    } finally {
      await first.close();
    }
  });
});

describe('node:http2 (compat API)', () => {
  it('scopes an HTTP/2 request the same way, and closes it when the stream has finished', async () => {
    const { connect, createServer: createHttp2Server } = await import('node:http2');
    let scope: Scope | undefined;
    const server = createHttp2Server(
      scoped(async (req, res) => {
        scope = currentScope();
        expect(requestScope(req)).toBe(scope);
        await null;
        res.end('hi');
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const client = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const stream = client.request({ ':path': '/h2?x=1' });
      stream.resume();
      stream.end();
      await once(stream, 'end');
      expect(scope?.name).toBe('GET /h2');
      await expect.poll(() => scope?.state).toBe('closed');
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('stacking', () => {
  it('custodianExpress() behind scoped(app) adds no second scope', async () => {
    const app = express();
    app.use(custodianExpress());
    let scope: Scope | undefined;
    app.get('/', (req, res) => {
      scope = currentScope();
      expect(requestScope(req)).toBe(scope);
      res.send('ok');
    });
    const server = await serve(scoped(app as (req: IncomingMessage, res: ServerResponse) => void));
    try {
      await get(server.url, keepAlive());
      expect(scope).toMatchObject({ name: 'GET /', parent: undefined });
    } finally {
      await server.close();
    }
  });
});

describe('Fastify hooks', () => {
  it('onRequest, preHandler and onResponse hooks registered after the plugin run in the request scope', async () => {
    const app = Fastify();
    await app.register(custodianFastify);
    const seen: Record<string, boolean> = {};
    const mark = (hook: string) => (request: { raw: IncomingMessage }) => {
      seen[hook] = currentScope() !== undefined && currentScope() === requestScope(request);
    };
    app.addHook('onRequest', async (request) => mark('onRequest')(request));
    app.addHook('preHandler', (request, _reply, done) => {
      mark('preHandler')(request);
      done();
    });
    app.addHook('onResponse', async (request) => mark('onResponse')(request));
    app.post('/', async (request) => {
      mark('handler')(request);
      return 'ok';
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      expect((await get(url, keepAlive(), 'POST', '{"x":1}')).body).toBe('ok');
      await expect.poll(() => seen['onResponse']).toBe(true);
      expect(seen).toEqual({ onRequest: true, preHandler: true, handler: true, onResponse: true });
    } finally {
      await app.close();
    }
  });

  it('a keep-alive connection does not carry one request scope into the next', async () => {
    const app = Fastify();
    await app.register(custodianFastify);
    const scopes: (Scope | undefined)[] = [];
    app.get('/', async () => {
      scopes.push(currentScope());
      return 'ok';
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const agent = keepAlive();
    try {
      for (let i = 0; i < 3; i++) await get(url, agent);
      expect(new Set(scopes).size).toBe(3);
    } finally {
      agent.destroy();
      await app.close();
    }
  });
});

describe('inspect()', () => {
  it('counts finished, client-gone and in-flight requests', async () => {
    const app = await serve(scoped((_req: IncomingMessage, res: ServerResponse) => void res.end('ok')));
    try {
      await get(app.url, keepAlive());
      const handler = inspectHandler();
      const res = Object.assign(new (await import('node:stream')).PassThrough(), { statusCode: 0, setHeader: () => {} });
      handler({}, res as never);
      const [body] = (await once(res, 'data')) as [Buffer];
      const stats = (JSON.parse(body.toString()) as { adapters: { name: string; finished: number }[] }).adapters.find(
        (a) => a.name === 'custodian/http',
      );
      expect(stats?.finished).toBeGreaterThan(0);
    } finally {
      await app.close();
    }
  });
});
