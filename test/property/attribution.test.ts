/**
 * Attribution: several expectNoLeaks() blocks run at once, their awaits interleaved in a random
 * order by fast-check's scheduler, each running a random program that acquires and releases
 * unscoped leases, runs withScope() tasks that release what they track or leave it to be
 * reclaimed, and opens scopes it leaves open. Each block's LeakCheckError must list exactly what
 * that block left behind — its own unreleased leases, reclaimed leases and open scopes (with what
 * they hold) — and never anything of another block.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectNoLeaks, LeakCheckError, type FoundLeak } from '../../adapters/vitest/index.js';
import { inspect, openScope, track, withScope, type Lease, type Scope } from '../../src/index.js';
import { PROPERTY_RUNS, useCleanCustodian } from '../helpers.js';

// Reclaimed leases are reported to expectNoLeaks() through the diagnostics channel; no warnings needed.
useCleanCustodian({ leaks: 'reclaim' });

type Step =
  /** Acquire an unscoped lease. */
  | { readonly t: 'lease' }
  /** Release one of the block's unscoped leases still held (the target-th, modulo), if any. */
  | { readonly t: 'release'; readonly target: number }
  /** A withScope() task that tracks a lease and releases it (or not: the scope's close reclaims it). */
  | { readonly t: 'scoped'; readonly release: boolean; readonly pauseInside: boolean }
  /** Open a scope and leave it open, holding a lease or not. */
  | { readonly t: 'open'; readonly holding: boolean }
  /** Await a point the scheduler resolves when it chooses. */
  | { readonly t: 'pause' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ t: 'lease' as const }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('release' as const), target: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('scoped' as const), release: fc.boolean(), pauseInside: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('open' as const), holding: fc.boolean() }) },
  { weight: 3, arbitrary: fc.constant({ t: 'pause' as const }) },
);

const programsArb = fc.array(fc.array(stepArb, { minLength: 1, maxLength: 10 }), { minLength: 2, maxLength: 5 });

const noop = () => {};

let serial = 0;

/** What one block acquired, for the expectation and for the cleanup after the run. */
interface Ledger {
  /** Unscoped leases still held. */
  readonly held: Lease<string>[];
  /** Scopes left open. */
  readonly open: Scope[];
  /** What the block left behind, as `describeLeak` renders it. */
  readonly expected: string[];
}

/** A leak as `type:label`, a scope with what it holds: `scope:name[lease:label,...]`. */
function describeLeak(leak: FoundLeak): string {
  const holds = leak.holds.length === 0 ? '' : `[${leak.holds.map(describeLeak).sort().join(',')}]`;
  return `${leak.type}:${leak.label ?? '?'}${holds}`;
}

/** Runs one block's program; resolves with the leaks its expectNoLeaks() reported (none when it resolved). */
async function runBlock(s: fc.Scheduler, block: number, steps: readonly Step[], ledger: Ledger): Promise<string[]> {
  const pause = () => s.schedule(Promise.resolve(), `block ${block} pause`);
  const fn = async () => {
    const own: { lease: Lease<string>; label: string }[] = [];
    for (const step of steps) {
      const label = `block ${block} #${++serial}`;
      switch (step.t) {
        case 'lease': {
          const lease = track(label, { release: noop, kind: 'connection', label });
          own.push({ lease, label });
          ledger.held.push(lease);
          break;
        }
        case 'release': {
          const [item] = own.length === 0 ? [] : own.splice(step.target % own.length, 1);
          if (item !== undefined) await item.lease.release();
          break;
        }
        case 'scoped':
          await withScope(async () => {
            const lease = track(label, { release: noop, kind: 'connection', label });
            if (step.pauseInside) await pause();
            if (step.release) await lease.release();
          });
          if (!step.release) ledger.expected.push(`reclaimed:${label}`);
          break;
        case 'open': {
          const scope = openScope({ name: label });
          ledger.open.push(scope);
          if (step.holding) {
            scope.track(label, { release: noop, kind: 'connection', label: `${label} held` });
            ledger.expected.push(`scope:${label}[lease:${label} held]`);
          } else {
            ledger.expected.push(`scope:${label}`);
          }
          break;
        }
        case 'pause':
          await pause();
          break;
      }
    }
    for (const { label } of own) ledger.expected.push(`lease:${label}`);
  };
  try {
    await expectNoLeaks(fn, { waitMs: 0 });
    return [];
  } catch (error) {
    if (!(error instanceof LeakCheckError)) throw error;
    return error.leaks.map(describeLeak);
  }
}

describe('expectNoLeaks() attribution under concurrency', () => {
  it('each block reports exactly what it left behind, never another block’s leftovers', async () => {
    const before = inspect();
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), programsArb, async (s, programs) => {
        const ledgers: Ledger[] = programs.map(() => ({ held: [], open: [], expected: [] }));
        try {
          const reported = await s.waitFor(
            Promise.all(programs.map((steps, block) => runBlock(s, block, steps, ledgers[block] as Ledger))),
          );
          reported.forEach((leaks, block) => {
            expect(leaks.sort(), `block ${block}`).toEqual((ledgers[block] as Ledger).expected.sort());
          });
        } finally {
          for (const ledger of ledgers) {
            for (const lease of ledger.held) await lease.release();
            for (const scope of ledger.open) await scope.close();
          }
        }
      }),
      { numRuns: PROPERTY_RUNS },
    );
    // Everything the runs acquired was given back.
    const after = inspect();
    expect(after.scopes.open).toBe(before.scopes.open);
    expect(after.leases.outstanding).toBe(before.leases.outstanding);
  });
});
