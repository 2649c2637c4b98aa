import { afterEach, describe, expect, it } from 'vitest';
import http2 from 'node:http2';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { scoped, requestSignal } from '../../../adapters/http/index.js';
import { inspect, type Lease } from '../../../src/index.js';
import { collectReports, settle, useCleanCustodian } from '../../helpers.js';
import { newPool, type Conn, unreleased } from './util.js';

useCleanCustodian({ sites: 'always' });

async function rstAfterFirstChunk(port: number, path: string): Promise<void> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => {});
  const stream = client.request({ ':path': path });
  stream.on('error', () => {});
  await new Promise((r) => stream.once('data', r));
  stream.close(http2.constants.NGHTTP2_CANCEL); // RST_STREAM
  await new Promise((r) => stream.on('close', r));
  client.close();
}

describe('HTTP/2 compat: RST_STREAM from the client before the response finished', () => {
  let server: http2.Http2Server | undefined;
  afterEach(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  it('async listener: the signal aborts (no timeout configured)', async () => {
    allowLeaks();
    const { pool, destroyed } = newPool();
    let aborted: unknown;
    let release: () => void = () => {};
    server = http2.createServer(
      scoped(async (req, res) => {
        const signal = requestSignal(req);
        await pool.acquire({ signal });
        res.writeHead(200);
        res.write('partial');
        await new Promise<void>((r) => {
          release = r;
          signal.addEventListener('abort', () => r());
        });
        aborted = signal.aborted ? signal.reason : 'never aborted';
      }),
    );
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    await rstAfterFirstChunk((server.address() as { port: number }).port, '/hang');
    const seen = await settle(
      async () => aborted,
      (a) => a !== undefined,
      1000,
    );
    const openNames = inspect().scopes.oldest.map((s) => `${s.name}:${s.state}`);
    release(); // unstick the handler so the test can clean up
    await settle(
      async () => inspect().scopes.open,
      (n) => n === 0,
    );
    expect(seen, `still open after RST: ${JSON.stringify(openNames)}`).toMatchObject({ name: 'AbortError' });
    expect(destroyed).toHaveLength(1);
    await pool.close();
  });

  it('callback-style listener holding a lease: destroyed, not returned to the pool, report cancelled', async () => {
    allowLeaks();
    const collected = collectReports();
    const { pool, destroyed } = newPool();
    let held: Lease<Conn> | undefined;
    server = http2.createServer(
      scoped((req, res) => {
        void pool.acquire({ signal: requestSignal(req) }).then((l) => {
          held = l; // in use by a callback chain the client abandons
          res.writeHead(200);
          res.write('partial');
        });
      }),
    );
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    await rstAfterFirstChunk((server.address() as { port: number }).port, '/cb');
    await settle(
      async () => inspect().scopes.open,
      (n) => n === 0,
    );
    collected.stop();
    expect(held).toBeDefined();
    expect(unreleased(collected.reports)).toMatchObject([{ cancelled: true }]);
    expect(destroyed).toHaveLength(1);
    expect(pool.stats()).toMatchObject({ available: 0 });
    await pool.close();
  });
});
