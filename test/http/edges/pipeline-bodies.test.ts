/**
 * A pipelined request queued behind a hung one, whose handler read its body (as
 * express.json()/body-parser or `for await (const c of req)` do), when the connection dies.
 */
import { afterEach, expect, it } from 'vitest';
import type { Server } from 'node:http';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { scoped, requestSignal } from '../../../adapters/http/index.js';
import { inspect } from '../../../src/index.js';
import { settle, useCleanCustodian } from '../../helpers.js';
import { closeServer, listen, newPool, nodeServer, raw, sleep } from './util.js';

useCleanCustodian({ sites: 'always' });
let server: Server | undefined;
afterEach(async () => {
  if (server) await closeServer(server);
});

it('queued pipelined requests that consumed their body are cut when the client resets the socket', async () => {
  allowLeaks();
  const { pool, destroyed } = newPool();
  let arrived = 0;
  server = nodeServer(
    scoped(async (req, res) => {
      arrived++;
      const lease = await pool.acquire({ signal: requestSignal(req) });
      void lease;
      for await (const chunk of req) void chunk; // the body is read (its 'end', then its early 'close')
      if (req.url === '/hang') {
        await new Promise<void>((r) => requestSignal(req).addEventListener('abort', () => r()));
        return;
      }
      res.end('queued'); // queued behind /hang
    }),
  );
  const port = await listen(server);
  const c = raw(port);
  const post = (path: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi`;
  c.socket.write(post('/hang') + post('/q1') + post('/q2'));
  await settle(
    async () => arrived,
    (n) => n === 3,
    2000,
  );
  await sleep(50);
  c.socket.resetAndDestroy();
  await c.closed;
  const open = await settle(
    async () => inspect().scopes.open,
    (n) => n === 0,
    2000,
  );
  // observed: 2 (POST /q1 and POST /q2 stay open for good, their leases never reclaimed)
  expect(open, JSON.stringify(inspect().scopes.oldest.map((s) => s.name))).toBe(0);
  expect(destroyed).toHaveLength(3);
  await pool.close({ timeout: 100 });
});
