/**
 * Lease benchmarks: `scope.track(value, { release })` + `lease.release()` against hand-written
 * create + try/finally + release, inside one open scope (the release is synchronous, so both loops
 * are synchronous). Also `track()` with no scope (the FinalizationRegistry path) and
 * `await using lease = scope.track(...)` (TypeScript's downlevelled form on Node 20).
 */
import { currentScope, openScope, track, type Scope } from '../src/index.js';
import { compareRow, measure, type MeasureOptions, type Row } from './harness.js';
import { sites, SITES } from './scope.bench.js';

/** A stand-in resource: created per operation, used, given back. */
interface Resource {
  id: number;
  open: boolean;
}
const sink = { count: 0 };
function create(i: number): Resource {
  return { id: i, open: true };
}
function use(r: Resource): void {
  sink.count += r.id & 1;
}
function release(r: Resource): void {
  r.open = false;
  sink.count++;
}

export async function leaseBench(options: MeasureOptions): Promise<Row[]> {
  const scope = openScope({ name: 'lease bench' });

  const handWritten = (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = create(i);
      try {
        use(r);
      } finally {
        release(r);
      }
    }
  };
  const trackIn = (s: Scope, n: number) => {
    for (let i = 0; i < n; i++) {
      const lease = s.track(create(i), { release });
      try {
        use(lease.value);
      } finally {
        void lease.release();
      }
    }
  };
  const scoped = (n: number) => scope.run((s) => trackIn(s, n));
  const unscoped = (n: number) => {
    if (currentScope() !== undefined) throw new Error('the unscoped benchmark must run outside any scope');
    for (let i = 0; i < n; i++) {
      const lease = track(create(i), { release });
      try {
        use(lease.value);
      } finally {
        void lease.release();
      }
    }
  };

  const sync = await measure(
    [
      { name: 'hand-written create + try/finally + release', run: handWritten },
      ...SITES.map((mode) => ({ name: `scope.track + lease.release [sites ${mode}]`, setup: sites(mode), run: scoped })),
      ...(['off', 'sampled'] as const).map((mode) => ({
        name: `track() with no scope [sites ${mode}]`,
        setup: sites(mode),
        run: unscoped,
      })),
    ],
    options,
  );
  const [hand, off, sampled, always, uOff, uSampled] = sync;
  const g = 'lease';
  const rows: Row[] = [
    compareRow(g, 'scope.track + release, sites off', off!, hand!, { maxDeltaNs: 300 }),
    compareRow(g, 'scope.track + release, sites sampled (prod default)', sampled!, hand!),
    compareRow(g, 'scope.track + release, sites always (dev default)', always!, hand!),
    compareRow(g, 'track() with no scope, sites off', uOff!, hand!, undefined, 'FinalizationRegistry register + unregister'),
    compareRow(g, 'track() with no scope, sites sampled', uSampled!, hand!),
  ];

  // `await using`: both loops are async and await the release once per operation.
  const handAsync = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = create(i);
      try {
        use(r);
      } finally {
        await release(r);
      }
    }
  };
  const explicitAsync = async (s: Scope, n: number) => {
    for (let i = 0; i < n; i++) {
      const lease = s.track(create(i), { release });
      try {
        use(lease.value);
      } finally {
        await lease.release();
      }
    }
  };
  const awaitUsing = async (s: Scope, n: number) => {
    for (let i = 0; i < n; i++) {
      await using lease = s.track(create(i), { release });
      use(lease.value);
    }
  };
  const off_ = sites('off');
  const asyncSet = await measure(
    [
      { name: 'hand-written try/finally { await release }', run: handAsync },
      { name: 'track + try/finally { await lease.release() } [off]', setup: off_, run: (n) => scope.run((s) => explicitAsync(s, n)) },
      { name: 'await using lease = scope.track(...) [off]', setup: off_, run: (n) => scope.run((s) => awaitUsing(s, n)) },
    ],
    options,
  );
  const [aHand, aExplicit, aUsing] = asyncSet;
  rows.push(
    compareRow(g, 'await using lease = scope.track(...), sites off', aUsing!, aHand!),
    compareRow(g, 'track + try/finally { await lease.release() }, sites off', aExplicit!, aHand!),
    compareRow(
      g,
      'await using vs explicit await lease.release()',
      aUsing!,
      aExplicit!,
      undefined,
      'cost of the downlevelled `await using`',
    ),
  );

  await scope.close();
  return rows;
}
