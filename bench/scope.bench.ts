/**
 * Context and scope benchmarks.
 *
 * `contextBench` must run first, before anything enables the library's AsyncLocalStorage: it
 * measures what a promise costs with no ALS enabled and with one, interleaved (a probe ALS is
 * enabled and disabled between rounds), and what one extra promise costs with ALS on — the floor
 * under `withScope`, which must wait for the body to settle and so creates at least one promise
 * more than a hand-written `als.run(store, async () => { try {} finally {} })`.
 *
 * `scopeBench` compares `withScope` with that hand-written code, which uses its own ALS instance.
 * Both ALS instances are enabled for the whole run, so every promise of both variants pays for both
 * (on Node 20 the init hook copies every enabled instance's store into each new promise).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { configure, withScope, type Scope } from '../src/index.js';
import { afterCollection, compareRow, measure, type MeasureOptions, type Row } from './harness.js';

/** Something the cleanups do, so that no variant's work can be optimized away. */
export const sink = { count: 0 };
function cleanup(): void {
  sink.count++;
}
function onTimeout(): void {
  sink.count--;
}

export const SITES = ['off', 'sampled', 'always'] as const;
export type SitesMode = (typeof SITES)[number];
/** Sets the site capture mode (the sample rate stays at its production default, 0.01). */
export function sites(mode: SitesMode): () => void {
  return () => void configure({ sites: mode, sampleRate: 0.01 });
}

// --- context: what a promise costs --------------------------------------------------------------

export async function contextBench(options: MeasureOptions): Promise<Row[]> {
  const probe = new AsyncLocalStorage<number>();
  const alsOn = () => probe.run(1, () => {}); // run() enables the instance; it stays enabled after
  const alsOff = () => probe.disable(); // the only enabled instance: the promise hooks go off too
  const body = async () => {};
  const identity = <T>(v: T): T => v;
  // Four separate functions, not one reused: optimized code and type feedback belong to a function,
  // and enabling the promise hooks changes what V8 compiles for an await.
  const plainOff = async (n: number) => {
    for (let i = 0; i < n; i++) await body();
  };
  const extraOff = async (n: number) => {
    for (let i = 0; i < n; i++) await body().then(identity);
  };
  const plainOn = async (n: number) => {
    for (let i = 0; i < n; i++) await body();
  };
  const extraOn = async (n: number) => {
    for (let i = 0; i < n; i++) await body().then(identity);
  };
  const [offPlain, offExtra, onPlain, onExtra] = await measure(
    [
      { name: 'await asyncFn()           [no ALS]', setup: alsOff, run: plainOff },
      { name: 'await asyncFn().then(id)  [no ALS]', setup: alsOff, run: extraOff },
      { name: 'await asyncFn()           [1 ALS enabled]', setup: alsOn, run: plainOn },
      { name: 'await asyncFn().then(id)  [1 ALS enabled]', setup: alsOn, run: extraOn },
    ],
    options,
  );
  probe.disable();
  const g = 'context';
  return [
    compareRow(g, 'await asyncFn(): 1 ALS enabled vs none', onPlain!, offPlain!, undefined, 'promise-hook cost of one async call + await'),
    compareRow(g, 'one extra promise (.then) with no ALS', offExtra!, offPlain!),
    compareRow(g, 'one extra promise (.then) with 1 ALS on', onExtra!, onPlain!, undefined, 'the floor under withScope'),
  ];
}

// --- withScope ----------------------------------------------------------------------------------

/** How many calls the after-a-full-GC row times after each collection. */
export const AFTER_GC_CALLS = 20_000;

export async function scopeBench(options: MeasureOptions): Promise<Row[]> {
  const als = new AsyncLocalStorage<{ readonly id: number }>();
  const store = { id: 1 };
  const store2 = { id: 2 };

  const handWritten = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await als.run(store, async () => {
        try {
          // the task
        } finally {
          cleanup();
        }
      });
    }
  };
  // What withScope has to do at the least: wait for the body to settle, then clean up — one more
  // promise than `handWritten`, no library code.
  const sameShape = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await als.run(store, async () => {}).then(cleanup);
    }
  };
  const custodian = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await withScope(async (s: Scope) => {
        s.defer(cleanup);
      });
    }
  };

  const main = await measure(
    [
      { name: 'hand-written als.run + try/finally', run: handWritten },
      { name: 'hand-written, same promise count', run: sameShape },
      ...SITES.map((mode) => ({ name: `withScope + defer [sites ${mode}]`, setup: sites(mode), run: custodian })),
    ],
    options,
  );
  const [hand, shape, off, sampled, always] = main;
  const g = 'withScope';
  const rows: Row[] = [
    compareRow(g, 'withScope + defer, sites off', off!, hand!, { maxRatio: 1.5 }),
    compareRow(g, 'withScope + defer, sites sampled (prod default)', sampled!, hand!, { maxRatio: 1.5 }),
    compareRow(g, 'withScope + defer, sites always (dev default)', always!, hand!, { maxRatio: 1.5 }),
    compareRow(g, 'floor: hand-written with one more promise', shape!, hand!, undefined, 'the least any wait-then-cleanup design costs'),
    compareRow(g, 'withScope (sites off) vs that floor', off!, shape!, undefined, 'library work beyond the floor'),
  ];

  // Right after a full GC: with no scope alive, V8 would drop the scope classes' shapes and the
  // code compiled against them (src/util/shapes.ts keeps them). 20,000 calls: a few ms of work.
  const [postHand, postOff] = await afterCollection(
    [
      { name: 'hand-written, after a full GC', run: handWritten },
      { name: 'withScope + defer [sites off], after a full GC', setup: sites('off'), run: custodian },
    ],
    options.rounds ?? 11,
    AFTER_GC_CALLS,
  );
  rows.push(
    compareRow(
      g,
      `withScope + defer, sites off, the ${AFTER_GC_CALLS} calls after a full GC`,
      postOff!,
      postHand!,
      undefined,
      'each side after its own forced GC',
    ),
  );

  // The cancellable path: a timeout arms a timer and makes runTask race the body.
  const handTimer = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await als.run(store, async () => {
        const timer = setTimeout(onTimeout, 10_000);
        try {
          // the task
        } finally {
          clearTimeout(timer);
          cleanup();
        }
      });
    }
  };
  const custodianTimeout = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await withScope(
        async (s: Scope) => {
          s.defer(cleanup);
        },
        { timeout: 10_000 },
      );
    }
  };
  const timeout = await measure(
    [
      { name: 'hand-written als.run + try/finally', run: handWritten },
      { name: 'hand-written + setTimeout/clearTimeout', run: handTimer },
      ...(['off', 'sampled'] as const).map((mode) => ({
        name: `withScope({ timeout }) [sites ${mode}]`,
        setup: sites(mode),
        run: custodianTimeout,
      })),
    ],
    options,
  );
  const [tHand, tTimer, tOff, tSampled] = timeout;
  rows.push(
    compareRow(g, 'withScope({ timeout }), sites off, vs hand-written + timer', tOff!, tTimer!),
    compareRow(g, 'withScope({ timeout }), sites sampled, vs hand-written + timer', tSampled!, tTimer!),
    compareRow(g, 'withScope({ timeout }), sites sampled, vs plain hand-written', tSampled!, tHand!),
  );

  // Nested scopes: a child scope inside a parent, both with a cleanup.
  const handNested = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await als.run(store, async () => {
        try {
          await als.run(store2, async () => {
            try {
              // the inner task
            } finally {
              cleanup();
            }
          });
        } finally {
          cleanup();
        }
      });
    }
  };
  const custodianNested = async (n: number) => {
    for (let i = 0; i < n; i++) {
      await withScope(async (s: Scope) => {
        s.defer(cleanup);
        await withScope(async (child: Scope) => {
          child.defer(cleanup);
        });
      });
    }
  };
  const nested = await measure(
    [
      { name: 'hand-written nested als.run', run: handNested },
      ...(['off', 'sampled'] as const).map((mode) => ({
        name: `nested withScope [sites ${mode}]`,
        setup: sites(mode),
        run: custodianNested,
      })),
    ],
    options,
  );
  const [nHand, nOff, nSampled] = nested;
  rows.push(
    compareRow(g, 'nested withScope, sites off', nOff!, nHand!),
    compareRow(g, 'nested withScope, sites sampled', nSampled!, nHand!),
  );
  return rows;
}
