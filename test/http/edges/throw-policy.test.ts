import { describe, expect, it } from 'vitest';
import { type Server, type ServerResponse } from 'node:http';
import express from 'express';
import { allowLeaks } from '../../../adapters/vitest/index.js';
import { custodianExpress, scoped } from '../../../adapters/http/index.js';
import { inspect } from '../../../src/index.js';
import { collectReports, collectWarnings, settle, useCleanCustodian } from '../../helpers.js';
import { closeServer, listen, newPool, nodeServer, sleep } from './util.js';
import { createServer, request as httpRequest } from 'node:http';

useCleanCustodian({ sites: 'always' });

const get = (port: number, path: string) =>
  new Promise<void>((resolve, reject) => {
    const r = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    r.on('error', reject);
    r.end();
  });

describe("leaks: 'throw' on a request scope (docs/http.md, Errors)", () => {
  it.each(['scoped', 'express'])('%s: a leaked lease is reported as a ResourceLeakWarning as well as on custodian:leak', async (kind) => {
    allowLeaks();
    const { pool } = newPool();
    const warnings = collectWarnings();
    const reports = collectReports();
    const handler = async (_req: unknown, res: ServerResponse) => {
      await pool.acquire(); // forgotten
      res.end('x');
    };
    let server: Server;
    if (kind === 'scoped') server = nodeServer(scoped(handler, { leaks: 'throw' }));
    else {
      const app = express();
      app.use(custodianExpress({ leaks: 'throw' }));
      app.get('/leak', handler);
      server = createServer(app);
    }
    const port = await listen(server);
    await get(port, '/leak');
    await settle(
      async () => inspect().scopes.open,
      (n) => n === 0,
    );
    await sleep(20);
    warnings.stop();
    reports.stop();
    await closeServer(server);
    await pool.close();
    expect(reports.reports.map((r) => r.type)).toEqual(['unreleased']); // on the channel: yes
    expect(warnings.warnings.map((w) => w.name)).toContain('ResourceLeakWarning'); // printed: ?
  });
});
