/**
 * The same small application served three ways: `node:http` through `scoped()`, Express through
 * `custodianExpress()`, Fastify through `custodianFastify`. Real servers on 127.0.0.1, a real HTTP
 * client, and a custodian pool of in-memory connections whose `destroy` is recorded, so that a test
 * can tell a connection given back from one destroyed.
 */
import { once } from 'node:events';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { custodianExpress, custodianFastify, inspectHandler, requestScope, requestSignal, scoped } from '../../adapters/http/index.js';
import { createPool, currentScope, track, type Pool, type Scope } from '../../src/index.js';

export type Flavour = 'node' | 'express' | 'fastify';
export const FLAVOURS: readonly Flavour[] = ['node', 'express', 'fastify'];

/** A pooled stand-in for a connection. */
export interface Conn {
  readonly id: number;
}

/** Everything the handlers record for the tests to check. */
export interface Probe {
  readonly pool: Pool<Conn>;
  /** Ids of the connections the pool destroyed. */
  readonly destroyed: number[];
  /** Scope state seen at every chunk of the streaming route. */
  readonly streamStates: string[];
  /** Errors the handlers met where none was expected. */
  readonly errors: unknown[];
  /** The abort route: what it saw once the client went away. */
  abort: { reason?: unknown; heldId?: number; acquireAfter?: unknown } | undefined;
  /** Resolved when the abort route has seen its signal abort. */
  aborted: Promise<void>;
  /** The timeout route: its signal's reason. */
  timeoutReason: unknown;
  /** The concurrency route: requests that saw another request's scope. */
  crossed: number;
  /** The concurrency route: gate released once `concurrent` requests are in. */
  concurrent: { expected: number; arrived: number; open: () => void; all: Promise<void> };
  /** Did the framework's error handler run in the request's scope? One entry per error handled. */
  readonly errorInScope: boolean[];
}

let nextConn = 1;

export function newProbe(): Probe {
  const destroyed: number[] = [];
  const pool = createPool<Conn>(
    { create: () => ({ id: nextConn++ }), destroy: (conn) => void destroyed.push(conn.id) },
    { name: `http-test-${process.pid}-${nextConn}`, kind: 'test connection', max: 50, acquireTimeoutMs: 5_000 },
  );
  const probe: Probe = {
    pool,
    destroyed,
    streamStates: [],
    errors: [],
    abort: undefined,
    aborted: Promise.resolve(),
    timeoutReason: undefined,
    crossed: 0,
    concurrent: { expected: 0, arrived: 0, open: () => {}, all: Promise.resolve() },
    errorInScope: [],
  };
  return probe;
}

/** Expect `n` concurrent requests on /c/:id before any of them goes on. */
export function expectConcurrent(probe: Probe, n: number): void {
  let open = () => {};
  const all = new Promise<void>((resolve) => (open = resolve));
  probe.concurrent = { expected: n, arrived: 0, open, all };
}

export const STREAM_TOTAL = 5 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

// --- the handlers' bodies, shared by the three flavours --------------------------------------------

/** Forgets a pooled lease: the scope must reclaim it and report this line. */
async function leak(probe: Probe): Promise<string> {
  const conn = await probe.pool.acquire(); // site:leak
  return `leaked ${conn.value.id}`;
}

/** The fixed twin. */
async function fixed(probe: Probe): Promise<string> {
  await using conn = await probe.pool.acquire();
  await null;
  return `fixed ${conn.value.id}`;
}

/**
 * Streams 5 MB in 64 KB chunks, honouring backpressure, from a loop the handler does not await:
 * a pooled acquire per chunk (which would fail if the scope had closed), and a lease held for the
 * whole response, given back from the response's `finish` event.
 */
async function stream(probe: Probe, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const scope = requestScope(req) as Scope;
  const held = await probe.pool.acquire();
  res.on('finish', () => void held.release());
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(STREAM_TOTAL) });
  for (let sent = 0, i = 0; sent < STREAM_TOTAL; sent += CHUNK.length, i++) {
    await using conn = await probe.pool.acquire();
    void conn;
    probe.streamStates.push(scope.state);
    if (!res.write(CHUNK)) await once(res, 'drain');
    // Paced, so the response lasts long after the handler returned (loopback buffers hold megabytes).
    if (i % 2 === 1) await new Promise((resolve) => setTimeout(resolve, 5));
  }
  res.end();
}

/** Holds a lease, sends the headers and 1 KB, then waits for the client to go away. */
async function abortable(probe: Probe, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const signal = requestSignal(req);
  const held = await probe.pool.acquire(); // held when the client goes away: must be destroyed
  const seen: NonNullable<Probe['abort']> = { heldId: held.value.id };
  probe.abort = seen;
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write('x'.repeat(1024));
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  seen.reason = signal.reason;
  seen.acquireAfter = await probe.pool.acquire().then(
    (lease) => {
      void lease.release();
      return 'acquired';
    },
    (error: unknown) => error,
  );
}

/** Waits for its signal: the request's timeout must cut it. */
async function slow(probe: Probe, req: object): Promise<void> {
  const signal = requestSignal(req);
  await probe.pool.acquire(); // held when the timeout elapses: must be destroyed
  await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  probe.timeoutReason = signal.reason;
}

/** Pseudo-random delays from a per-request seed: setImmediate, timers and microtasks interleaved. */
async function wander(seed: number, steps: number): Promise<void> {
  let x = seed * 2654435761;
  for (let i = 0; i < steps; i++) {
    x = (x ^ (x >>> 13)) * 1274126177;
    const pick = (x >>> 0) % 4;
    if (pick === 0) await null;
    else if (pick === 1) await new Promise<void>((resolve) => setImmediate(resolve));
    else if (pick === 2) await new Promise<void>((resolve) => setTimeout(resolve, (x >>> 8) % 5));
    else await Promise.resolve().then(() => null);
  }
}

/**
 * Concurrency: waits until every expected request has arrived, wanders, checks after every step
 * that it is still in its own scope, then forgets a marker labelled with its id. A report naming
 * two markers, or a marker under another request's scope, is cross-request attribution.
 */
async function concurrent(probe: Probe, req: object, id: string): Promise<string> {
  const mine = currentScope();
  if (mine === undefined || requestScope(req) !== mine) probe.crossed++;
  const c = probe.concurrent;
  if (++c.arrived === c.expected) c.open();
  await c.all;
  const seed = Number(id);
  for (let round = 0; round < 3; round++) {
    await wander(seed + round * 7919, 3);
    if (currentScope() !== mine) probe.crossed++;
    const lease = await probe.pool.acquire();
    await wander(seed + round, 1);
    if (currentScope() !== mine) probe.crossed++;
    await lease.release();
  }
  track({ id }, { kind: 'request marker', label: id, release: () => {} });
  return id;
}

// --- the three flavours ----------------------------------------------------------------------------

/** The integration options the tests vary. */
export interface AppOptions {
  timeout?: number;
}

export interface App {
  readonly url: string;
  close(): Promise<void>;
}

export async function startApp(flavour: Flavour, probe: Probe, options?: AppOptions): Promise<App> {
  if (flavour === 'fastify') return startFastify(probe, options);
  const server = flavour === 'node' ? nodeServer(probe, options) : expressServer(probe, options);
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

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(body);
}

function nodeServer(probe: Probe, options?: AppOptions): Server {
  const debug = inspectHandler({ maxScopes: 5 });
  return createServer(
    scoped(async (req, res) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      if (path === '/leak') send(res, 200, await leak(probe));
      else if (path === '/fixed') send(res, 200, await fixed(probe));
      else if (path === '/stream') void stream(probe, req, res).catch((error: unknown) => probe.errors.push(error));
      else if (path === '/abort') await abortable(probe, req, res);
      else if (path === '/timeout') await slow(probe, req);
      else if (path.startsWith('/c/')) send(res, 200, await concurrent(probe, req, path.slice(3)));
      else if (path === '/debug/custodian') debug(req, res);
      else send(res, 404, 'not found');
    }, options),
  );
}

function expressServer(probe: Probe, options?: AppOptions): Server {
  const app = express();
  app.use(custodianExpress(options));
  app.use(express.json()); // a body parser between the middleware and the routes: the scope must survive it
  app.get('/leak', async (_req, res) => void res.send(await leak(probe)));
  app.get('/fixed', async (_req, res) => void res.send(await fixed(probe)));
  app.post('/fixed', async (req, res) => void res.send(`${await fixed(probe)} ${JSON.stringify(req.body)}`));
  app.get('/stream', (req, res) => void stream(probe, req, res).catch((error: unknown) => probe.errors.push(error)));
  app.get('/abort', (req, res) => abortable(probe, req, res));
  app.get('/timeout', (req) => slow(probe, req));
  app.get('/c/:id', async (req, res) => void res.send(await concurrent(probe, req, String(req.params['id']))));
  app.get('/throw', () => {
    throw new Error('thrown synchronously');
  });
  app.get('/reject', async () => {
    await null;
    throw new Error('rejected');
  });
  app.get('/next', (_req, _res, next: NextFunction) => setImmediate(() => next(new Error('passed to next'))));
  app.get('/debug/custodian', inspectHandler({ maxScopes: 5 }));
  app.use((error: Error, req: Request, res: Response, _next: NextFunction) => {
    probe.errorInScope.push(currentScope() !== undefined && currentScope() === requestScope(req));
    res.status(500).send(`handled: ${error.message}`);
  });
  return createServer(app);
}

async function startFastify(probe: Probe, options?: AppOptions): Promise<App> {
  const app: FastifyInstance = Fastify();
  await app.register(custodianFastify, options ?? {});
  app.get('/leak', () => leak(probe));
  app.get('/fixed', () => fixed(probe));
  app.post('/fixed', async (request) => `${await fixed(probe)} ${JSON.stringify(request.body)}`);
  app.get('/stream', async (request, reply) => {
    const scope = requestScope(request) as Scope;
    const held = await probe.pool.acquire();
    reply.raw.on('finish', () => void held.release());
    let sent = 0;
    let i = 0;
    const body = new Readable({
      read() {
        probe.streamStates.push(scope.state);
        const chunk = sent < STREAM_TOTAL ? CHUNK : null;
        sent += CHUNK.length;
        // Paced, so the response lasts long after the handler returned (loopback buffers hold megabytes).
        setTimeout(() => this.push(chunk), i++ % 2 === 1 ? 5 : 0);
      },
    });
    return reply.header('content-type', 'application/octet-stream').header('content-length', String(STREAM_TOTAL)).send(body);
  });
  app.get('/abort', (request, reply) => {
    reply.hijack(); // writes the raw response itself, as a hand-rolled streaming route does
    return abortable(probe, request.raw, reply.raw);
  });
  app.get('/timeout', (request) => slow(probe, request));
  app.get<{ Params: { id: string } }>('/c/:id', (request) => concurrent(probe, request, request.params.id));
  app.get('/throw', () => {
    throw new Error('thrown synchronously');
  });
  app.get('/reject', async () => {
    await null;
    throw new Error('rejected');
  });
  app.get('/next', (_request, reply) => void setImmediate(() => reply.send(new Error('passed to next'))));
  app.get('/debug/custodian', inspectHandler({ maxScopes: 5 }));
  app.setErrorHandler((error: Error, request, reply) => {
    probe.errorInScope.push(currentScope() !== undefined && currentScope() === requestScope(request));
    void reply.code(500).send(`handled: ${error.message}`);
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { url: address, close: () => app.close() };
}

// --- the client ------------------------------------------------------------------------------------

export interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: IncomingMessage['headers'];
}

/** One request on `agent` (keep-alive by default), the whole body read. */
export function get(url: string, agent: Agent, method = 'GET', payload?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent, method, headers: payload === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

export const keepAlive = () => new Agent({ keepAlive: true, maxSockets: 16 });
