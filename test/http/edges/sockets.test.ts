import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, request as httpRequest, type Server } from 'node:http';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { scoped, requestSignal } from '../../../adapters/http/index.js';
import { inspect } from '../../../src/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { closeServer, listen, newPool, nodeServer, openScopes, raw, sleep, unreleased } from './util.js';

useCleanCustodian({ sites: 'always' });

describe('client socket behaviour against scoped()', () => {
  let server: Server;
  let port: number;
  let collected: ReturnType<typeof collectReports>;
  const { pool, destroyed } = newPool();
  const bodies: string[] = [];
  beforeEach(async () => {
    collected = collectReports();
    server = nodeServer(
      scoped(async (req, res) => {
        const signal = requestSignal(req);
        await using l = await pool.acquire({ signal });
        void l;
        if (req.url === '/body') {
          let body = '';
          try {
            for await (const c of req) body += c;
          } catch {
            return;
          }
          bodies.push(body);
          res.end(`got ${body.length}`);
          return;
        }
        if (req.url === '/headers-then-wait') {
          res.writeHead(200, { 'content-length': '10' });
          res.flushHeaders();
          await Promise.race([new Promise((r) => signal.addEventListener('abort', r)), sleep(300)]);
          res.end('0123456789');
          return;
        }
        await sleep(30);
        res.end('ok');
      }),
    );
    port = await listen(server);
  });
  afterEach(async () => {
    collected.stop();
    await closeServer(server);
    await openScopes();
  });

  it('half-close after the request: Node itself drops the response (httpAllowHalfOpen false); custodian cancels consistently', async () => {
    allowLeaks();
    const before = destroyed.length;
    const c = raw(port);
    c.socket.end('GET /x HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.closed;
    await openScopes();
    await settle(
      async () => destroyed.length - before,
      (n) => n === 1,
    );
    expect(destroyed.length - before).toBe(1);
    expect(unreleased(collected.reports)).toMatchObject([{ cancelled: true }]);
  });

  it('reset mid-headers: no scope opened, nothing held', async () => {
    const c = raw(port);
    c.socket.write('GET /x HTTP/1.1\r\nHost: x\r\nX-Partial: ');
    await sleep(20);
    c.socket.resetAndDestroy();
    await c.closed;
    await openScopes();
    expect(collected.reports).toEqual([]);
  });

  it('reset mid-body: cancelled, lease destroyed', async () => {
    allowLeaks();
    const before = destroyed.length;
    const c = raw(port);
    c.socket.write('POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789');
    await sleep(30);
    c.socket.resetAndDestroy();
    await openScopes();
    await settle(
      async () => destroyed.length - before,
      (n) => n === 1,
    );
    expect(destroyed.length - before).toBe(1);
    expect(unreleased(collected.reports)).toMatchObject([{ cancelled: true, scope: { name: 'POST /body' } }]);
  });

  it('reset right after the response headers: cancelled, lease destroyed', async () => {
    allowLeaks();
    const before = destroyed.length;
    const c = raw(port);
    c.socket.write('GET /headers-then-wait HTTP/1.1\r\nHost: x\r\n\r\n');
    await settle(
      async () => c.data(),
      (d) => d.includes('\r\n\r\n'),
    );
    c.socket.resetAndDestroy();
    await openScopes();
    await settle(
      async () => destroyed.length - before,
      (n) => n === 1,
    );
    expect(destroyed.length - before).toBe(1);
  });

  it('7,000 requests with 10% aborts: no scope left, pool consistent', async () => {
    allowLeaks();
    collected.stop(); // the test's own collector would keep every report
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const one = (path: string, abort: boolean) =>
      new Promise<void>((resolve) => {
        const r = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
          res.resume();
          res.on('end', resolve);
          res.on('error', () => resolve());
        });
        r.on('error', () => resolve());
        r.on('close', () => resolve());
        r.end();
        if (abort) setTimeout(() => r.destroy(), 5);
      });
    let done = 0;
    const run = async (count: number) => {
      let left = count;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (left-- > 0) {
            await one('/x', done % 10 === 3);
            done++;
          }
        }),
      );
    };
    for (let k = 0; k < 7; k++) {
      await run(1000);
      await openScopes();
    }
    agent.destroy();
    await openScopes();
    expect(inspect().scopes.open).toBe(0);
    expect(pool.stats()).toMatchObject({ borrowed: 0, pending: 0 });
    // Heap flatness is asserted over 10,000 requests in requests.test.ts.
  }, 180_000);
});
