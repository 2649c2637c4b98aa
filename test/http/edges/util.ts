import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request as httpRequest } from 'node:http';
import { createPool, inspect, type LeakReport, type Pool } from '../../../src/index.js';
import { settle } from '../../helpers.js';

export interface Conn {
  readonly id: number;
}
let nextConn = 1;
export function newPool(opts: { max?: number; createDelay?: number } = {}) {
  const destroyed: number[] = [];
  const created: number[] = [];
  const pool: Pool<Conn> = createPool<Conn>(
    {
      create: async () => {
        if (opts.createDelay) await new Promise((r) => setTimeout(r, opts.createDelay));
        const c = { id: nextConn++ };
        created.push(c.id);
        return c;
      },
      destroy: (c) => void destroyed.push(c.id),
    },
    { name: `adv-${process.pid}-${nextConn}-${Math.random()}`, kind: 'adv connection', max: opts.max ?? 50, acquireTimeoutMs: 5_000 },
  );
  return { pool, destroyed, created };
}

export async function listen(server: Server | { listen: Server['listen']; address: Server['address'] }): Promise<number> {
  await new Promise<void>((resolve) => (server as Server).listen(0, '127.0.0.1', resolve));
  return ((server as Server).address() as AddressInfo).port;
}

export function nodeServer(listener: (req: IncomingMessage, res: ServerResponse) => void): Server {
  return createServer(listener);
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** Raw socket: write bytes, collect everything until close. */
export function raw(port: number): { socket: Socket; data: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let buf = '';
  socket.on('data', (d) => (buf += d.toString()));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, data: () => buf, closed };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The `unreleased` reports among `reports`. */
export const unreleased = (reports: readonly LeakReport[]) =>
  reports.filter((r) => r.type === 'unreleased') as Extract<LeakReport, { type: 'unreleased' }>[];

/** Waits until `inspect()` shows no open scope (fails after `ms`). */
export const openScopes = (ms = 3000) =>
  settle(
    async () => inspect().scopes.open,
    (n) => n === 0,
    ms,
  );

/** GET `path` on a fresh connection: its status and body. */
export function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
