/**
 * Random scope programs for the property tests: a generator (fast-check arbitraries) and an
 * interpreter that runs a program against custodian while logging every release and destroy call,
 * then checks the lifecycle properties on the log.
 *
 * A program is a tree of scopes (withScope, openScope + run + close, fork + run + close). Each
 * scope's body runs a few steps: acquire (track, use, defer, adopt) with sync or async releases
 * that sometimes fail, explicit release or destroy of an earlier lease of the same scope
 * (sometimes twice), waits, self-cancellation, children (one at a time or two in parallel), a
 * sleep longer than the scope's timeout, and it ends by returning or throwing.
 *
 * The interpreter never lets a check throw inside a body (that would change the body's outcome);
 * it collects violations, which `runProgram` returns.
 */
import fc from 'fast-check';
import {
  configure,
  currentScope,
  flattenSuppressed,
  getReleaseErrors,
  inspect,
  openScope,
  ScopeClosedError,
  ScopeTimeoutError,
  track,
  withScope,
  type Lease,
  type LeakReport,
  type Scope,
  type ScopeOptions,
} from '../../src/index.js';

// --- programs -------------------------------------------------------------------------------------

/** How a release settles: synchronously, after a microtask, after setImmediate, or after 1-2 ms. */
export type Latency = 'sync' | 'micro' | 'immediate' | 1 | 2;

export interface ReleaseSpec {
  readonly latency: Latency;
  /** Throws (sync) or rejects (async). */
  readonly fail: boolean;
}

export type Step =
  | { readonly t: 'track'; readonly release: ReleaseSpec; readonly destroy: ReleaseSpec | null; readonly via: 'scope' | 'global' }
  | { readonly t: 'use'; readonly release: ReleaseSpec; readonly async: boolean }
  | { readonly t: 'defer'; readonly release: ReleaseSpec }
  | { readonly t: 'adopt'; readonly release: ReleaseSpec }
  | { readonly t: 'release'; readonly target: number; readonly how: 'release' | 'asyncDispose' | 'dispose'; readonly twice: boolean }
  | { readonly t: 'destroy'; readonly target: number; readonly twice: boolean }
  | { readonly t: 'wait'; readonly how: 'null' | 'immediate' | 0 | 1 | 2 }
  | { readonly t: 'cancel' }
  | { readonly t: 'child'; readonly node: ScopeNode }
  | { readonly t: 'parallel'; readonly nodes: readonly ScopeNode[] };

export interface TimeoutSpec {
  /** The scope's `timeout` option. */
  readonly ms: number;
  /** Before which step the body sleeps `ms + extra` (clamped to the number of steps). */
  readonly slowAt: number;
  /** How much longer than the timeout the body sleeps (may be a little shorter). */
  readonly extra: number;
}

export interface ScopeNode {
  readonly kind: 'with' | 'open' | 'fork';
  /** How an `open`/`fork` scope is closed by the code: `leave` never closes it (the parent does). */
  readonly close: 'close' | 'asyncDispose' | 'leave';
  readonly timeout: TimeoutSpec | null;
  readonly name: string | null;
  /** A plain (non-async) body: only synchronous steps, so `withScope`/`run` see a value or a throw. */
  readonly sync: boolean;
  readonly steps: readonly Step[];
  readonly end: 'return' | 'throw' | 'throwObject';
}

export interface Program {
  readonly root: ScopeNode;
  /** `configure({ disposeTimeoutMs })` for the run: 0 waits forever, else a generous bound. */
  readonly disposeTimeoutMs: number;
}

/**
 * A scope that stops waiting for its still-running body (timeout) decides once, when its close
 * starts, that what the body holds is destroyed: even if the body settles while the close awaits an
 * earlier release, its remaining leases are destroyed and reported as cancelled.
 */
export const STRICT_CANCEL_DESTROY = true;

export const MAX_DEPTH = 3;
export const MAX_STEPS = 6;

const latencyArb: fc.Arbitrary<Latency> = fc.constantFrom<Latency>('sync', 'sync', 'sync', 'micro', 'micro', 'immediate', 1, 2);
const releaseSpecArb: fc.Arbitrary<ReleaseSpec> = fc.record({
  latency: latencyArb,
  // about one release in five fails; shrinks towards "does not fail"
  fail: fc.nat(4).map((n) => n === 4),
});

function stepArb(childArb: fc.Arbitrary<ScopeNode> | null, parallelArb: fc.Arbitrary<ScopeNode> | null): fc.Arbitrary<Step> {
  const steps: fc.WeightedArbitrary<Step>[] = [
    {
      weight: 5,
      arbitrary: fc.record({
        t: fc.constant('track' as const),
        release: releaseSpecArb,
        destroy: fc.option(releaseSpecArb, { freq: 2, nil: null }),
        via: fc.constantFrom('scope' as const, 'global' as const),
      }),
    },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('use' as const), release: releaseSpecArb, async: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('defer' as const), release: releaseSpecArb }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('adopt' as const), release: releaseSpecArb }) },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('release' as const),
        target: fc.nat(5),
        how: fc.constantFrom('release' as const, 'asyncDispose' as const, 'dispose' as const),
        twice: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('destroy' as const), target: fc.nat(5), twice: fc.boolean() }) },
    {
      weight: 2,
      arbitrary: fc.record({
        t: fc.constant('wait' as const),
        how: fc.constantFrom('null' as const, 'immediate' as const, 0 as const, 1 as const, 2 as const),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ t: 'cancel' as const }) },
  ];
  if (childArb !== null) steps.push({ weight: 8, arbitrary: fc.record({ t: fc.constant('child' as const), node: childArb }) });
  if (parallelArb !== null) {
    steps.push({
      weight: 3,
      arbitrary: fc.record({ t: fc.constant('parallel' as const), nodes: fc.array(parallelArb, { minLength: 2, maxLength: 2 }) }),
    });
  }
  return fc.oneof(...steps);
}

const SYNC_STEPS = new Set<Step['t']>(['track', 'use', 'defer', 'adopt', 'release', 'destroy', 'cancel']);

/** The shape rules: a synchronous body has only synchronous steps and no timeout. */
function normalize(node: ScopeNode): ScopeNode {
  if (!node.sync) return node;
  return { ...node, steps: node.steps.filter((s) => SYNC_STEPS.has(s.t)), timeout: null };
}

function nodeArb(depth: number, kinds: readonly ScopeNode['kind'][]): fc.Arbitrary<ScopeNode> {
  const childArb = depth < MAX_DEPTH ? nodeArb(depth + 1, ['with', 'open', 'fork']) : null;
  const parallelArb = depth < MAX_DEPTH ? nodeArb(depth + 1, ['with', 'open', 'fork']) : null;
  return fc
    .record({
      kind: fc.constantFrom(...kinds),
      close: fc.constantFrom('close' as const, 'close' as const, 'asyncDispose' as const, 'leave' as const),
      // about one scope in six has a timeout
      timeout: fc.oneof(
        { weight: 5, arbitrary: fc.constant(null) },
        {
          weight: 1,
          arbitrary: fc.record({ ms: fc.integer({ min: 2, max: 5 }), slowAt: fc.nat(MAX_STEPS), extra: fc.integer({ min: -1, max: 3 }) }),
        },
      ),
      name: fc.option(fc.constantFrom('GET /users/:id', 'job', 'consumer'), { freq: 2, nil: null }),
      sync: fc.nat(5).map((n) => n === 5),
      steps: fc.array(stepArb(childArb, parallelArb), { maxLength: MAX_STEPS, size: 'max' }),
      end: fc.constantFrom(
        'return' as const,
        'return' as const,
        'return' as const,
        'throw' as const,
        'throw' as const,
        'throwObject' as const,
      ),
    })
    .map(normalize);
}

export const programArb: fc.Arbitrary<Program> = fc.record({
  root: nodeArb(1, ['with']),
  disposeTimeoutMs: fc.constantFrom(0, 1000),
});

// --- interpreter state ----------------------------------------------------------------------------

type By = 'code' | 'scope' | 'refused';

/** One call of a release or destroy function. */
export interface Call {
  readonly seq: number;
  readonly op: 'release' | 'destroy';
  /** Who made it: the code (explicit release/destroy), the scope (close), or a closed scope refusing the value. */
  readonly by: By;
  /** The owner's body had started and not finished when the call was made. */
  readonly ownerBodyRunning: boolean;
  /** The error it throws or rejects with, if it fails. */
  readonly error: Error | undefined;
  done: boolean;
}

export interface Resource {
  readonly id: number;
  readonly kind: 'lease' | 'use' | 'defer' | 'adopt';
  readonly owner: ScopeRec;
  readonly hasDestroy: boolean;
  /**
   * A synchronous [Symbol.dispose] that returns a promise: as with `await using`, the scope calls it
   * and ignores what it returns, so it neither waits for it nor sees its rejection.
   */
  readonly ignored: boolean;
  /** Acquisition order in the owner scope (only for accepted acquisitions). */
  ordinal: number;
  acquired: boolean;
  refused: boolean;
  lease: Lease<number> | undefined;
  readonly calls: Call[];
}

export class ScopeRec {
  readonly children: ScopeRec[] = [];
  readonly resources: Resource[] = [];
  readonly leases: Resource[] = [];
  scope: Scope | undefined = undefined;
  openFailed = false;
  acquisitions = 0;
  bodyPhase: 'before' | 'running' | 'done' = 'before';
  /** The abort of its signal, when it happened. */
  abort: { reason: unknown; duringBody: boolean; whileOpen: boolean } | undefined = undefined;
  /** Who closed it: its own withScope, the code (close()/asyncDispose while open), or the parent's close. */
  closedBy: 'self' | 'code' | 'parent';
  readonly cancellable: boolean;

  constructor(
    readonly label: string,
    readonly node: ScopeNode,
    readonly parent: ScopeRec | undefined,
  ) {
    this.closedBy = node.kind === 'with' ? 'self' : 'parent';
    this.cancellable = node.timeout !== null || (parent !== undefined && parent.cancellable);
    parent?.children.push(this);
  }

  /** A withScope cancelled while its body ran: its answer is the cancellation reason. */
  get answeredByCancel(): boolean {
    return this.node.kind === 'with' && this.abort !== undefined && this.abort.duringBody;
  }

  /**
   * ... and, having a timeout (own or inherited), it stopped waiting for the body and closed at once:
   * leases the running body still held are destroyed.
   */
  get closedWhileRunning(): boolean {
    return this.answeredByCancel && this.cancellable && !this.node.sync;
  }

  *subtree(): Generator<ScopeRec> {
    yield this;
    for (const child of this.children) yield* child.subtree();
  }

  /** Descendants, not itself. */
  *descendants(): Generator<ScopeRec> {
    for (const child of this.children) yield* child.subtree();
  }
}

interface Ctx {
  seq: number;
  nextResource: number;
  nextScope: number;
  mode: By;
  readonly recs: ScopeRec[];
  readonly resources: Resource[];
  readonly bodies: Promise<unknown>[];
  readonly pending: Set<Promise<unknown>>;
  readonly violations: string[];
  /** The reasons `scope.cancel()` steps aborted with; any other cancellation must be a timeout. */
  readonly cancelReasons: Set<unknown>;
}

function check(ctx: Ctx, ok: boolean, message: () => string): void {
  if (!ok) ctx.violations.push(message());
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));

function delay(latency: Exclude<Latency, 'sync'>): Promise<void> {
  if (latency === 'micro') return Promise.resolve();
  if (latency === 'immediate') return immediate();
  return sleep(latency);
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function outcomeOf(promise: Promise<unknown>): Promise<Outcome> {
  return promise.then(
    (value): Outcome => ({ ok: true, value }),
    (error: unknown): Outcome => ({ ok: false, error }),
  );
}

function describeValue(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === 'object' && value !== null) return JSON.stringify(value);
  return String(value);
}

// --- errors ---------------------------------------------------------------------------------------

interface SuppressedShape {
  readonly error: unknown;
  readonly suppressed: unknown;
}

function isSuppressed(value: unknown): value is Error & SuppressedShape {
  return value instanceof Error && value.name === 'SuppressedError' && 'suppressed' in value && 'error' in value;
}

/** Every leaf error of a (possibly nested) SuppressedError chain, oldest first. */
export function deepFlatten(value: unknown): unknown[] {
  if (!isSuppressed(value)) return [value];
  return [...deepFlatten(value.suppressed), ...deepFlatten(value.error)];
}

function sameList(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function isSubsequence(sub: readonly unknown[], of: readonly unknown[]): boolean {
  let i = 0;
  for (const x of of) if (i < sub.length && x === sub[i]) i++;
  return i === sub.length;
}

function names(list: readonly unknown[]): string {
  return `[${list.map(describeValue).join(', ')}]`;
}

// --- releases -------------------------------------------------------------------------------------

function releaser(ctx: Ctx, res: Resource, spec: ReleaseSpec, op: 'release' | 'destroy'): () => unknown {
  return () => {
    const error = spec.fail ? new Error(`${op} of r${res.id} (${res.owner.label}) failed`) : undefined;
    const call: Call = { seq: ++ctx.seq, op, by: ctx.mode, ownerBodyRunning: res.owner.bodyPhase === 'running', error, done: false };
    res.calls.push(call);
    if (spec.latency === 'sync') {
      call.done = true;
      if (error !== undefined) throw error;
      return undefined;
    }
    const pending = delay(spec.latency).then(() => {
      call.done = true;
      if (error !== undefined) throw error;
    });
    ctx.pending.add(pending);
    const forget = () => void ctx.pending.delete(pending);
    pending.then(forget, forget);
    return pending;
  };
}

function newResource(ctx: Ctx, rec: ScopeRec, kind: Resource['kind'], hasDestroy: boolean, ignored = false): Resource {
  const res: Resource = {
    id: ++ctx.nextResource,
    kind,
    owner: rec,
    hasDestroy,
    ignored,
    ordinal: -1,
    acquired: false,
    refused: false,
    lease: undefined,
    calls: [],
  };
  ctx.resources.push(res);
  rec.resources.push(res);
  return res;
}

/** Runs an acquisition; a closed scope must refuse it with a ScopeClosedError after releasing the value. */
function acquire(ctx: Ctx, rec: ScopeRec, res: Resource, run: () => void): void {
  const before = res.calls.length;
  const stateBefore = rec.scope?.state;
  ctx.mode = 'refused';
  try {
    run();
    res.acquired = true;
    res.ordinal = rec.acquisitions++;
    check(ctx, stateBefore === 'open', () => `r${res.id} was accepted by ${rec.label} in state ${String(stateBefore)}`);
    check(ctx, res.calls.length === before, () => `r${res.id} was released while being acquired into ${rec.label}`);
  } catch (error) {
    res.refused = true;
    check(ctx, error instanceof ScopeClosedError, () => `acquiring r${res.id} in ${rec.label} threw ${describeValue(error)}`);
    check(ctx, stateBefore !== 'open', () => `${rec.label} refused r${res.id} while open`);
    check(ctx, res.calls.length === before + 1, () => `r${res.id} refused by ${rec.label} was released ${res.calls.length - before} times`);
  } finally {
    ctx.mode = 'scope';
  }
}

// --- steps ----------------------------------------------------------------------------------------

function syncStep(ctx: Ctx, rec: ScopeRec, scope: Scope, step: Step): Promise<void> | undefined {
  switch (step.t) {
    case 'track': {
      const res = newResource(ctx, rec, 'lease', step.destroy !== null);
      const options = {
        release: releaser(ctx, res, step.release, 'release'),
        destroy: step.destroy === null ? undefined : releaser(ctx, res, step.destroy, 'destroy'),
        kind: 'test resource',
        label: `r${res.id}`,
      };
      acquire(ctx, rec, res, () => {
        res.lease = step.via === 'scope' ? scope.track(res.id, options) : track(res.id, options);
      });
      if (res.acquired) rec.leases.push(res);
      return undefined;
    }
    case 'use': {
      const res = newResource(ctx, rec, 'use', false, !step.async && step.release.latency !== 'sync');
      const dispose = releaser(ctx, res, step.release, 'release');
      acquire(ctx, rec, res, () => {
        const value = scope.use(
          step.async ? { [Symbol.asyncDispose]: dispose as () => Promise<void> } : { [Symbol.dispose]: dispose as () => void },
        );
        check(ctx, value !== undefined, () => `use() returned nothing`);
      });
      return undefined;
    }
    case 'defer': {
      const res = newResource(ctx, rec, 'defer', false);
      acquire(ctx, rec, res, () => scope.defer(releaser(ctx, res, step.release, 'release')));
      return undefined;
    }
    case 'adopt': {
      const res = newResource(ctx, rec, 'adopt', false);
      const release = releaser(ctx, res, step.release, 'release');
      acquire(ctx, rec, res, () => {
        const value = scope.adopt(res.id, (v) =>
          v === res.id ? release() : Promise.reject(new Error(`adopt released ${v}, not r${res.id}`)),
        );
        check(ctx, value === res.id, () => `adopt() returned ${String(value)}`);
      });
      return undefined;
    }
    case 'release':
    case 'destroy':
      return explicitRelease(ctx, rec, step);
    case 'cancel':
      scope.cancel();
      check(ctx, scope.signal.aborted, () => `${rec.label}.cancel() did not abort its signal`);
      ctx.cancelReasons.add(scope.signal.reason);
      return undefined;
    case 'wait':
      if (step.how === 'null') return Promise.resolve(null).then(() => undefined);
      if (step.how === 'immediate') return immediate();
      return sleep(step.how);
    case 'child':
      return runNode(ctx, step.node, rec);
    case 'parallel':
      return Promise.all(step.nodes.map((node) => runNode(ctx, node, rec))).then(() => undefined);
  }
}

/** Releases or destroys an earlier lease of the same scope, maybe twice; checks idempotence. */
function explicitRelease(ctx: Ctx, rec: ScopeRec, step: Extract<Step, { t: 'release' | 'destroy' }>): Promise<void> | undefined {
  if (rec.leases.length === 0) return undefined;
  const res = rec.leases[step.target % rec.leases.length] as Resource;
  const lease = res.lease as Lease<number>;
  const wasHeld = !lease.released;
  const before = res.calls.length;
  const how = step.t === 'destroy' ? 'destroy' : step.how;
  const once = (): Promise<void> | undefined => {
    ctx.mode = 'code';
    try {
      switch (how) {
        case 'release':
          return lease.release();
        case 'asyncDispose':
          return lease[Symbol.asyncDispose]();
        case 'destroy':
          return lease.destroy(new Error('broken'));
        case 'dispose':
          lease[Symbol.dispose]();
          return undefined;
      }
    } finally {
      ctx.mode = 'scope';
    }
  };
  let syncError: unknown = undefined;
  let threw = false;
  let first: Promise<void> | undefined;
  try {
    first = once();
  } catch (error) {
    threw = true;
    syncError = error;
  }
  const call = res.calls[before];
  check(ctx, lease.released, () => `r${res.id} is not released after lease.${how}()`);
  if (wasHeld) {
    check(
      ctx,
      res.calls.length === before + 1 && call?.by === 'code',
      () => `lease.${how}() of held r${res.id} made ${res.calls.length - before} calls`,
    );
    const expectedOp = how === 'destroy' && res.hasDestroy ? 'destroy' : 'release';
    check(ctx, call?.op === expectedOp, () => `lease.${how}() of r${res.id} called ${String(call?.op)}, expected ${expectedOp}`);
  } else {
    check(ctx, res.calls.length === before, () => `lease.${how}() of released r${res.id} called its release again`);
  }
  if (how === 'dispose') {
    // A synchronous failure is thrown by [Symbol.dispose]; an asynchronous one is only reported.
    const expectThrow = wasHeld && call !== undefined && call.error !== undefined && call.done;
    check(
      ctx,
      threw === expectThrow && (!threw || syncError === call?.error),
      () => `lease[Symbol.dispose]() of r${res.id}: threw ${threw ? describeValue(syncError) : 'nothing'}`,
    );
  } else {
    check(ctx, !threw, () => `lease.${how}() of r${res.id} threw synchronously: ${describeValue(syncError)}`);
  }
  let second: Promise<void> | undefined;
  if (step.twice) {
    const count = res.calls.length;
    try {
      second = once();
    } catch (error) {
      check(ctx, false, () => `second lease.${how}() of r${res.id} threw ${describeValue(error)}`);
    }
    check(ctx, res.calls.length === count, () => `second lease.${how}() of r${res.id} called its release again`);
    if (first !== undefined && second !== undefined && wasHeld) {
      check(ctx, first === second, () => `second lease.${how}() of r${res.id} did not return the first call's promise`);
    }
  }
  const promises = [first, second].filter((p): p is Promise<void> => p !== undefined);
  if (promises.length === 0) return undefined;
  return Promise.all(
    promises.map((p) =>
      outcomeOf(p).then((outcome) => {
        if (!wasHeld) {
          // Released before: by the scope (its reclaim), the promise waits for it and never rejects;
          // by the code, it is the earlier call's promise.
          const earlier = res.calls[0];
          if (earlier?.by === 'scope') {
            check(ctx, outcome.ok, () => `lease.${how}() of r${res.id}, reclaimed by its scope, rejected`);
            check(ctx, earlier.done || res.ignored, () => `lease.${how}() of r${res.id} settled before its scope's release of it finished`);
          }
          return;
        }
        if (call === undefined) return;
        // The code's own release: its promise settles like the release function did.
        if (call.error === undefined)
          check(ctx, outcome.ok, () => `lease.${how}() of r${res.id} rejected: ${outcome.ok ? '' : describeValue(outcome.error)}`);
        else
          check(
            ctx,
            !outcome.ok && outcome.error === call.error,
            () => `lease.${how}() of r${res.id} did not reject with its release error`,
          );
      }),
    ),
  ).then(() => undefined);
}

// --- bodies ---------------------------------------------------------------------------------------

class BodyError extends Error {
  override readonly name = 'BodyError';
}

interface BodyEnd {
  /** What the body returned or threw. */
  token: unknown;
  threw: boolean;
}

function endOf(rec: ScopeRec): BodyEnd {
  if (rec.node.end === 'return') return { token: { returnedBy: rec.label }, threw: false };
  if (rec.node.end === 'throw') return { token: new BodyError(`body of ${rec.label} threw`), threw: true };
  return { token: { thrownBy: rec.label }, threw: true };
}

function checkCurrent(ctx: Ctx, rec: ScopeRec, scope: Scope, where: string): void {
  const current = currentScope();
  check(ctx, current === scope, () => `${where}: currentScope() is #${String(current?.id)}, expected ${rec.label} (#${scope.id})`);
}

function bodyStart(ctx: Ctx, rec: ScopeRec, scope: Scope): void {
  rec.scope = scope;
  watchSignal(ctx, rec, scope);
  rec.bodyPhase = 'running';
  checkCurrent(ctx, rec, scope, `start of ${rec.label}`);
  check(
    ctx,
    scope.parent === rec.parent?.scope,
    () => `${rec.label}.parent is #${String(scope.parent?.id)}, expected ${String(rec.parent?.label)}`,
  );
  // A scope opened under an aborted, still-open parent starts aborted with its reason.
  const parentSignal = rec.parent?.scope?.signal;
  if (parentSignal?.aborted === true && rec.parent?.scope?.state === 'open') {
    check(
      ctx,
      scope.signal.aborted && scope.signal.reason === parentSignal.reason,
      () => `${rec.label} was opened under the cancelled ${String(rec.parent?.label)} but its signal is not aborted`,
    );
  }
}

/** The body of an async scope program; `end` is what it returns or throws. */
async function asyncBody(ctx: Ctx, rec: ScopeRec, scope: Scope, end: BodyEnd): Promise<unknown> {
  bodyStart(ctx, rec, scope);
  try {
    const steps = rec.node.steps;
    const timeout = rec.node.timeout;
    const slowAt = timeout === null ? -1 : Math.min(timeout.slowAt, steps.length);
    for (let i = 0; i <= steps.length; i++) {
      if (i === slowAt && timeout !== null) {
        await sleep(Math.max(0, timeout.ms + timeout.extra));
        checkCurrent(ctx, rec, scope, `${rec.label} after its slow step`);
      }
      const step = steps[i];
      if (step === undefined) break;
      const pending = syncStep(ctx, rec, scope, step);
      if (pending !== undefined) await pending;
      checkCurrent(ctx, rec, scope, `${rec.label} after step ${i} (${step.t})`);
    }
    if (end.threw) throw end.token;
    return end.token;
  } finally {
    rec.bodyPhase = 'done';
  }
}

function syncBody(ctx: Ctx, rec: ScopeRec, scope: Scope, end: BodyEnd): unknown {
  bodyStart(ctx, rec, scope);
  try {
    for (const step of rec.node.steps) {
      const pending = syncStep(ctx, rec, scope, step);
      if (pending !== undefined) ctx.bodies.push(pending.catch(() => undefined));
      checkCurrent(ctx, rec, scope, `${rec.label} after ${step.t}`);
    }
    if (end.threw) throw end.token;
    return end.token;
  } finally {
    rec.bodyPhase = 'done';
  }
}

/** Runs the body as the scope's task; records the body's own promise so the end can wait for zombies. */
function body(ctx: Ctx, rec: ScopeRec, scope: Scope, end: BodyEnd): unknown {
  if (rec.node.sync) return syncBody(ctx, rec, scope, end);
  const promise = asyncBody(ctx, rec, scope, end);
  ctx.bodies.push(promise.catch(() => undefined));
  return promise;
}

/**
 * Records the abort of a scope's signal. When it is a cancellation (the scope is still open), every
 * open descendant that was not aborted yet must be cancelled with the same reason, at once.
 */
function watchSignal(ctx: Ctx, rec: ScopeRec, scope: Scope): void {
  const signal = scope.signal;
  const onAbort = () => {
    const whileOpen = scope.state === 'open';
    rec.abort = { reason: signal.reason, duringBody: rec.bodyPhase === 'running', whileOpen };
    if (!whileOpen) return;
    const expected = [...rec.descendants()].filter((d) => d.scope !== undefined && d.scope.state === 'open' && !d.scope.signal.aborted);
    queueMicrotask(() => {
      for (const d of expected) {
        check(
          ctx,
          d.scope?.signal.reason === signal.reason,
          () =>
            `${rec.label} was cancelled (${describeValue(signal.reason)}) but its descendant ${d.label} got ${describeValue(d.scope?.signal.reason)}`,
        );
      }
    });
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
}

function optionsOf(rec: ScopeRec): ScopeOptions {
  const options: ScopeOptions = {};
  if (rec.node.timeout !== null) options.timeout = rec.node.timeout.ms;
  if (rec.node.name !== null) options.name = rec.node.name;
  return options;
}

/** Runs one scope of the program inside the current one (or as the root). Never rejects. */
async function runNode(ctx: Ctx, node: ScopeNode, parent: ScopeRec | undefined): Promise<void> {
  const rec = new ScopeRec(`s${++ctx.nextScope}:${node.kind}`, node, parent);
  ctx.recs.push(rec);
  const end = endOf(rec);
  const parentState = parent?.scope?.state;
  // A task opened under a cancelled (aborted, still open) scope starts cancelled and never runs.
  const parentReason =
    parent?.scope !== undefined && parentState === 'open' && parent.scope.signal.aborted
      ? { reason: parent.scope.signal.reason }
      : undefined;
  if (node.kind === 'with') {
    const outcome = await outcomeOf(withScope((scope) => body(ctx, rec, scope, end), optionsOf(rec)));
    if (rec.scope === undefined) {
      rec.openFailed = true;
      const closedParent = !outcome.ok && outcome.error instanceof ScopeClosedError && parent !== undefined && parentState !== 'open';
      const cancelledParent = !outcome.ok && parentReason !== undefined && outcome.error === parentReason.reason;
      check(
        ctx,
        closedParent || cancelledParent,
        () =>
          `withScope ${rec.label} did not run: ${describeValue(outcome.ok ? outcome.value : outcome.error)} (parent ${String(parentState)})`,
      );
      return;
    }
    checkSettled(ctx, rec, rec.scope, 'withScope');
    checkTaskOutcome(ctx, rec, end, outcome);
    return;
  }
  let scope: Scope;
  try {
    scope = node.kind === 'open' ? openScope(optionsOf(rec)) : (parent?.scope as Scope).fork(optionsOf(rec));
  } catch (error) {
    rec.openFailed = true;
    check(
      ctx,
      error instanceof ScopeClosedError && parent !== undefined && parentState !== 'open',
      () => `${rec.label} did not open: ${describeValue(error)} (parent ${String(parentState)})`,
    );
    return;
  }
  // run(): the body's own result or error, untouched
  let run: Outcome;
  try {
    const result = scope.run((s) => body(ctx, rec, s, end));
    run = node.sync ? { ok: true, value: result } : await outcomeOf(result as Promise<unknown>);
  } catch (error) {
    run = { ok: false, error };
  }
  check(
    ctx,
    run.ok !== end.threw && (run.ok ? run.value : run.error) === end.token,
    () =>
      `${rec.label}.run() settled with ${describeValue(run.ok ? run.value : run.error)}, expected the body's ${describeValue(end.token)}`,
  );
  if (node.close === 'leave') return;
  const openBefore = scope.state === 'open';
  if (openBefore) rec.closedBy = 'code';
  const closed = await outcomeOf(node.close === 'close' ? scope.close() : scope[Symbol.asyncDispose]());
  checkSettled(ctx, rec, scope, 'close()');
  if (!openBefore) {
    check(
      ctx,
      closed.ok,
      () => `close() of ${rec.label}, already closed by its parent, rejected: ${closed.ok ? '' : describeValue(closed.error)}`,
    );
    return;
  }
  checkReleaseFailure(ctx, rec, closed.ok ? undefined : closed, `close() of ${rec.label}`);
}

// --- checks at settle time --------------------------------------------------------------------------

/** Property 4: when a scope's close settles, it is closed and everything acquired in it and below is released. */
function checkSettled(ctx: Ctx, rec: ScopeRec, scope: Scope, how: string): void {
  check(ctx, scope.state === 'closed', () => `${how} of ${rec.label} settled in state ${scope.state}`);
  for (const r of rec.subtree()) {
    if (r.scope !== undefined && !r.openFailed)
      check(ctx, r.scope.state === 'closed', () => `${r.label} is ${String(r.scope?.state)} when ${how} of ${rec.label} settled`);
    for (const res of r.resources) {
      if (!res.acquired) continue;
      check(ctx, res.calls.length > 0, () => `r${res.id} of ${r.label} was not released when ${how} of ${rec.label} settled`);
      for (const call of res.calls) {
        if (call.by === 'scope' && !res.ignored)
          check(ctx, call.done, () => `the release of r${res.id} (${r.label}) had not finished when ${how} of ${rec.label} settled`);
      }
    }
  }
}

/** The release errors that must surface from `rec`'s close: its own scope-made failures and those of children its close closed. */
function expectedReleaseErrors(rec: ScopeRec): { errors: Error[]; nested: boolean } {
  const scopes = new Set<ScopeRec>();
  const collect = (r: ScopeRec) => {
    scopes.add(r);
    for (const child of r.children) if (child.node.kind !== 'with' && child.closedBy === 'parent' && !child.openFailed) collect(child);
  };
  collect(rec);
  const calls: Call[] = [];
  for (const r of scopes)
    for (const res of r.resources) {
      if (res.ignored) continue;
      for (const call of res.calls) if (call.by === 'scope' && call.error !== undefined) calls.push(call);
    }
  calls.sort((a, b) => a.seq - b.seq);
  const nested = calls.some((c) => !rec.resources.some((res) => res.calls.includes(c)));
  return { errors: calls.map((c) => c.error as Error), nested };
}

/** Property 5 when nothing else failed: no release error → success; else the release error (chain). */
function checkReleaseFailure(ctx: Ctx, rec: ScopeRec, rejected: { error: unknown } | undefined, what: string): void {
  const { errors, nested } = expectedReleaseErrors(rec);
  if (errors.length === 0) {
    check(ctx, rejected === undefined, () => `${what} rejected with ${describeValue(rejected?.error)} though no release failed`);
    return;
  }
  if (rejected === undefined) {
    check(ctx, false, () => `${what} resolved though releases failed: ${names(errors)}`);
    return;
  }
  const error = rejected.error;
  if (errors.length === 1)
    check(ctx, error === errors[0], () => `${what} rejected with ${describeValue(error)}, expected the release error ${names(errors)}`);
  check(
    ctx,
    sameList(deepFlatten(error), errors),
    () => `${what} rejected with ${names(deepFlatten(error))}, expected release errors ${names(errors)} in release order`,
  );
  if (!nested)
    check(
      ctx,
      sameList(flattenSuppressed(error), errors),
      () => `flattenSuppressed(${what} error) is ${names(flattenSuppressed(error))}, expected ${names(errors)}`,
    );
}

/** Property 5 for withScope: the body's error stays primary; a cancellation rejects with its reason. */
function checkTaskOutcome(ctx: Ctx, rec: ScopeRec, end: BodyEnd, outcome: Outcome): void {
  const what = `withScope ${rec.label}`;
  const { errors } = expectedReleaseErrors(rec);
  if (rec.answeredByCancel) {
    const reason = rec.abort?.reason;
    check(
      ctx,
      !outcome.ok && outcome.error === reason,
      () =>
        `${what} was cancelled with ${describeValue(reason)} but settled with ${describeValue(outcome.ok ? outcome.value : outcome.error)}`,
    );
    check(
      ctx,
      ctx.cancelReasons.has(reason) || (reason instanceof ScopeTimeoutError && reason.name === 'TimeoutError'),
      () => `${what} was cancelled by neither a cancel() nor a timeout: ${describeValue(reason)}`,
    );
    const attached = getReleaseErrors(reason).flatMap(deepFlatten);
    check(
      ctx,
      isSubsequence(errors, attached),
      () => `${what}: release errors ${names(errors)} are not all attached to the cancellation reason (${names(attached)})`,
    );
    return;
  }
  if (end.threw) {
    check(
      ctx,
      !outcome.ok && outcome.error === end.token,
      () =>
        `${what}: body threw ${describeValue(end.token)} but it settled with ${describeValue(outcome.ok ? outcome.value : outcome.error)}`,
    );
    if (end.token instanceof Error) {
      const attached = getReleaseErrors(end.token).flatMap(deepFlatten);
      check(
        ctx,
        sameList(attached, errors),
        () => `${what}: getReleaseErrors(body error) is ${names(attached)}, expected ${names(errors)}`,
      );
    }
    return;
  }
  if (outcome.ok) {
    check(ctx, outcome.value === end.token, () => `${what} resolved with ${describeValue(outcome.value)}, not the body's value`);
    checkReleaseFailure(ctx, rec, undefined, what);
  } else {
    checkReleaseFailure(ctx, rec, { error: outcome.error }, what);
  }
}

// --- the whole program -----------------------------------------------------------------------------

export interface RunResult {
  readonly violations: string[];
  readonly recs: readonly ScopeRec[];
  readonly resources: readonly Resource[];
}

/** Waits until no body is running and no release is pending. */
async function quiesce(ctx: Ctx): Promise<void> {
  for (let round = 0; round < 100; round++) {
    const bodies = ctx.bodies.length;
    await Promise.allSettled([...ctx.bodies, ...ctx.pending]);
    await immediate();
    if (bodies === ctx.bodies.length && ctx.pending.size === 0) return;
  }
  ctx.violations.push('the program did not quiesce');
}

/**
 * Runs `program` and checks properties 1-6 on the log. `reports` is the live list of leak reports
 * collected during the run. Returns the violations (empty when every property holds).
 */
export async function runProgram(program: Program, reports: readonly LeakReport[]): Promise<RunResult> {
  configure({ disposeTimeoutMs: program.disposeTimeoutMs });
  const ctx: Ctx = {
    seq: 0,
    nextResource: 0,
    nextScope: 0,
    mode: 'scope',
    recs: [],
    resources: [],
    bodies: [],
    pending: new Set(),
    violations: [],
    cancelReasons: new Set(),
  };
  const firstReport = reports.length;
  check(ctx, currentScope() === undefined, () => `a scope (#${String(currentScope()?.id)}) is current before the program starts`);
  await runNode(ctx, program.root, undefined);
  check(ctx, currentScope() === undefined, () => `a scope (#${String(currentScope()?.id)}) is current after the program ended`);
  // Property 4: nothing open or outstanding once the root closed (zombie bodies cannot reopen anything).
  const snapshot = inspect();
  check(ctx, snapshot.scopes.open === 0, () => `${snapshot.scopes.open} scopes open after the root closed`);
  check(ctx, snapshot.leases.outstanding === 0, () => `${snapshot.leases.outstanding} leases outstanding after the root closed`);
  await quiesce(ctx);
  const after = inspect();
  check(
    ctx,
    after.scopes.open === 0 && after.leases.outstanding === 0,
    () => `after quiescence: ${after.scopes.open} scopes open, ${after.leases.outstanding} leases outstanding`,
  );

  for (const res of ctx.resources) {
    // Property 1: released (or destroyed) exactly once, whoever did it.
    check(
      ctx,
      res.calls.length === 1,
      () => `r${res.id} (${res.kind} of ${res.owner.label}${res.refused ? ', refused' : ''}) was released ${res.calls.length} times`,
    );
    if (res.lease !== undefined) check(ctx, res.lease.released, () => `lease r${res.id} does not say it is released`);
    for (const call of res.calls) {
      check(ctx, call.done, () => `the release of r${res.id} never finished`);
      if (call.by === 'refused') check(ctx, call.op === 'release', () => `refused r${res.id} was destroyed`);
      if (call.by === 'scope' && call.op === 'destroy')
        check(ctx, res.owner.closedWhileRunning, () => `r${res.id} was destroyed by ${res.owner.label}, which was not cancelled`);
      if (call.by === 'scope' && res.hasDestroy && res.owner.closedWhileRunning && (STRICT_CANCEL_DESTROY || call.ownerBodyRunning)) {
        check(
          ctx,
          call.op === 'destroy',
          () => `r${res.id}, still held by the running body of the cancelled ${res.owner.label}, was released, not destroyed`,
        );
      }
    }
  }

  const unreleased = new Map<number, number>();
  const cancelledReports = new Set<number>();
  for (const report of reports.slice(firstReport)) {
    if (report.type === 'unreleased') {
      unreleased.set(report.scope.id, (unreleased.get(report.scope.id) ?? 0) + report.resources.length);
      // Newer versions say whether the resources were destroyed because the task was cancelled mid-run.
      if ((report as { cancelled?: unknown }).cancelled === true) cancelledReports.add(report.scope.id);
    } else check(ctx, false, () => `unexpected ${report.type} report: ${report.message}`);
  }
  const known = new Set<number>();
  for (const rec of ctx.recs) {
    if (rec.scope === undefined) continue;
    known.add(rec.scope.id);
    const byScope = rec.resources
      .flatMap((res) => res.calls.filter((c) => c.by === 'scope').map((c) => ({ res, c })))
      .sort((a, b) => a.c.seq - b.c.seq);
    // Property 2: what the scope released itself, it released newest first.
    for (let i = 1; i < byScope.length; i++) {
      const prev = byScope[i - 1];
      const cur = byScope[i];
      if (prev !== undefined && cur !== undefined) {
        check(
          ctx,
          prev.res.ordinal > cur.res.ordinal,
          () => `${rec.label} released r${prev.res.id} (#${prev.res.ordinal}) before r${cur.res.id} (#${cur.res.ordinal}): not LIFO`,
        );
      }
    }
    // Property 3: children (all descendants) before the scope's own resources.
    const firstOwn = byScope[0]?.c.seq;
    if (firstOwn !== undefined) {
      for (const d of rec.descendants()) {
        for (const res of d.resources) {
          for (const call of res.calls) {
            if (call.by === 'scope')
              check(
                ctx,
                call.seq < firstOwn,
                () => `r${res.id} of ${d.label} was released after ${rec.label} began releasing its own resources`,
              );
          }
        }
      }
    }
    // Property 6: the leases the code did not release are exactly those reported, per scope.
    const reclaimed = byScope.filter(({ res }) => res.kind === 'lease').length;
    const reported = unreleased.get(rec.scope.id) ?? 0;
    check(ctx, reclaimed === reported, () => `${rec.label} (#${rec.scope?.id}) reclaimed ${reclaimed} leases but reported ${reported}`);
    if (STRICT_CANCEL_DESTROY && rec.closedWhileRunning && reported > 0) {
      check(
        ctx,
        cancelledReports.has(rec.scope.id),
        () => `${rec.label} (#${rec.scope?.id}) stopped waiting for its running body but reported its leases as not cancelled`,
      );
    }
    if (cancelledReports.has(rec.scope.id)) {
      check(
        ctx,
        rec.closedWhileRunning,
        () =>
          `${rec.label} (#${rec.scope?.id}) reported its leases as destroyed by a cancellation, but it was not closed while its body ran`,
      );
    }
  }
  for (const id of unreleased.keys()) check(ctx, known.has(id), () => `an unreleased report names scope #${id}, not one of this program`);
  return { violations: ctx.violations, recs: ctx.recs, resources: ctx.resources };
}

/** A short text form of a program, for failure messages. */
export function showProgram(node: ScopeNode, indent = ''): string {
  const head = `${indent}${node.kind}${node.kind === 'with' ? '' : `/${node.close}`}${node.sync ? ' sync' : ''}${node.timeout === null ? '' : ` timeout=${node.timeout.ms} slow@${node.timeout.slowAt}+${node.timeout.extra}`} -> ${node.end}`;
  const lines = [head];
  for (const step of node.steps) {
    if (step.t === 'child') lines.push(showProgram(step.node, `${indent}  `));
    else if (step.t === 'parallel') {
      lines.push(`${indent}  parallel:`);
      for (const n of step.nodes) lines.push(showProgram(n, `${indent}    `));
    } else lines.push(`${indent}  ${JSON.stringify(step)}`);
  }
  return lines.join('\n');
}
