import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { scoped, requestSignal } from '../../../adapters/http/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { newPool, openScopes, sleep, unreleased } from './util.js';

useCleanCustodian({ sites: 'always' });

describe('HTTP/2 compat', () => {
  let server: http2.Http2Server;
  let port: number;
  let collected: ReturnType<typeof collectReports>;
  const { pool, destroyed } = newPool();
  const reasons: unknown[] = [];

  beforeEach(async () => {
    collected = collectReports();
    server = http2.createServer(
      scoped(
        async (req, res) => {
          if (req.url === '/leak') {
            await pool.acquire();
            res.end('leak');
            return;
          }
          if (req.url === '/fixed') {
            await using l = await pool.acquire();
            void l;
            res.end('fixed');
            return;
          }
          if (req.url === '/late') {
            const l = await pool.acquire();
            res.end('late');
            await sleep(50);
            await l.release();
            return;
          }
          // /hang: holds a lease, writes headers, waits for abort
          const signal = requestSignal(req);
          await pool.acquire({ signal });
          res.writeHead(200);
          res.write('partial');
          await new Promise((r) => signal.addEventListener('abort', r));
          reasons.push(signal.reason);
        },
        { timeout: 2000 },
      ),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterEach(async () => {
    collected.stop();
    await new Promise<void>((r) => server.close(() => r()));
    await openScopes();
  });

  async function h2get(path: string, opts: { rst?: boolean } = {}): Promise<string> {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => {});
    try {
      const stream = client.request({ ':path': path });
      stream.on('error', () => {});
      let body = '';
      await new Promise<void>((resolve) => {
        stream.on('data', (d: Buffer) => {
          body += d.toString();
          if (opts.rst) stream.close(http2.constants.NGHTTP2_CANCEL);
        });
        stream.on('close', () => resolve());
        stream.end();
      });
      return body;
    } finally {
      client.close();
    }
  }

  it('leak reported, fixed quiet, late release quiet', async () => {
    allowLeaks();
    expect(await h2get('/leak')).toBe('leak');
    expect(await h2get('/fixed')).toBe('fixed');
    expect(await h2get('/late')).toBe('late');
    await openScopes();
    const r = unreleased(collected.reports);
    expect(r.map((x) => [x.scope.name, x.cancelled])).toEqual([['GET /leak', false]]);
  });

  it('RST_STREAM from the client mid-response: cancelled, lease destroyed', async () => {
    allowLeaks();
    const before = destroyed.length;
    await h2get('/hang', { rst: true });
    await openScopes();
    await settle(
      async () => destroyed.length - before,
      (n) => n === 1,
    );
    expect(destroyed.length - before).toBe(1);
    expect(unreleased(collected.reports)).toMatchObject([{ cancelled: true, scope: { name: 'GET /hang' } }]);
    expect(reasons.at(-1)).toMatchObject({ name: 'AbortError' });
  });

  it('session destroyed mid-response: cancelled', async () => {
    allowLeaks();
    const before = destroyed.length;
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => {});
    const stream = client.request({ ':path': '/hang' });
    stream.on('error', () => {});
    await new Promise((r) => stream.once('data', r));
    client.destroy();
    await openScopes();
    await settle(
      async () => destroyed.length - before,
      (n) => n === 1,
    );
    expect(destroyed.length - before).toBe(1);
  });
});
