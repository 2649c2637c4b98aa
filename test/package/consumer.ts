/**
 * Type-checked (by `npm run typecheck`), never run: code written the way a user writes it, against
 * the published declarations (`custodian` resolves through the package's own `exports` map to
 * dist/src/*.d.ts). If a declaration leaks an internal type or loses a public one, this breaks.
 */
import {
  configure,
  currentScope,
  flattenSuppressed,
  getReleaseErrors,
  inspect,
  openScope,
  track,
  withScope,
  type Lease,
  type LeakReport,
  type Scope,
  type Snapshot,
} from 'custodian';

interface Connection {
  query(sql: string): Promise<number>;
  end(): Promise<void>;
}
declare function connect(): Promise<Connection>;

export async function handler(): Promise<number> {
  configure({ leaks: 'warn', onLeak: (report: LeakReport) => void report.message });
  return withScope(
    async (scope: Scope) => {
      await using lease: Lease<Connection> = scope.track(await connect(), { release: (c) => c.end(), kind: 'db connection' });
      scope.defer(() => undefined);
      const site: string | undefined = lease.site;
      void site;
      return lease.value.query('select 1');
    },
    { name: 'GET /', timeout: 1000, signal: new AbortController().signal, leaks: 'throw' },
  );
}

export async function consumer(): Promise<Snapshot> {
  await using scope = openScope({ name: 'consumer' });
  scope.run(() => currentScope()?.adopt(1, () => undefined));
  const lease = track({ id: 1 }, { release: () => undefined });
  await lease.release();
  try {
    await scope.close();
  } catch (error) {
    flattenSuppressed(error).concat(getReleaseErrors(error));
  }
  // @ts-expect-error internal members are not published
  void scope.entries;
  // @ts-expect-error internal members are not published
  scope.runTask(() => 1);
  return inspect({ maxScopes: 10 });
}
