/**
 * A major GC between two transactions must not throw away the adapter's optimized code: a
 * transaction lives only while it runs, so its shape is kept for the process (see
 * src/util/shapes.ts). mysql2's own functions (Query, packets) are deoptimized by the same GC in
 * both custodian and plain mysql2, and are not checked here.
 */
import { expect, it } from 'vitest';
import { describeWithServer, probeMysql } from '../integration/servers.js';
import { weakObjectDeopts } from '../deopts.js';

const server = await probeMysql();

/** The adapter's transaction and statement path (not `start`: the sweep has one too). */
const HOT = new Set(['Transaction', '#run', '#end', '#release', '#openConnection', 'commit', 'send', 'exec', 'statement']);

describeWithServer(server, 'custodian/mysql after a full GC', () => {
  it('a full GC with no transaction alive deoptimizes none of the transaction path', { timeout: 60_000 }, async () => {
    expect(await weakObjectDeopts('test/mysql/fixtures/shapes.ts', HOT)).toEqual([]);
  });
});
