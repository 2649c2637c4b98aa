/**
 * Random pool programs for the property tests: a generator (fast-check arbitraries) and an
 * interpreter that runs a program against `createPool` with a fake in-memory factory and checks
 * the pool's invariants after every step.
 *
 * A program is a pool configuration (max 1-4, min 0..max, optional maxUses, maxWaiting and
 * acquireTimeoutMs), scripted factory behaviour (per call: synchronous, after a microtask, or held
 * by fast-check's scheduler until a `tick` lets it go; and whether it fails: create throws,
 * validate says false, reset or destroy throw) and a list of operations: open a scope task that
 * acquires leases, acquire more (plain, with an AbortSignal, with a timeout; in a scope or
 * outside any), release or destroy a lease, abort an acquire's signal, end a scope without
 * releasing, cancel a scope, let scheduled factory calls finish, and let (fake) time pass so that
 * acquire and scope timeouts fire.
 *
 * Time is fake (vitest's timers, `performance` included; the test file installs them) and every
 * asynchronous factory call waits for the scheduler, so a run has no real sleeps and replays the
 * same way from its seed. After each operation the interpreter lets everything settle (microtasks,
 * setImmediate) and checks the invariants (see `checkStep`); it never throws inside the pool's
 * callbacks, it collects violations, which `runPoolProgram` returns.
 */
import { inspect } from 'node:util';
import fc from 'fast-check';
import { vi } from 'vitest';
import {
  createPool,
  currentScope,
  PoolClosedError,
  PoolCreateError,
  PoolFullError,
  PoolTimeoutError,
  ScopeClosedError,
  withScope,
  type AcquireOptions,
  type Lease,
  type PoolFactory,
  type PoolOptions,
  type PoolStats,
  type Scope,
} from '../../src/index.js';

// --- programs -------------------------------------------------------------------------------------

/** How a factory call settles: synchronously, after a microtask, or when the scheduler lets it. */
export type Latency = 'sync' | 'micro' | 'sched';

/** One scripted factory call. `fail`: create throws, validate answers false, reset and destroy throw. */
export interface CallSpec {
  readonly latency: Latency;
  readonly fail: boolean;
}

export interface PoolSpec {
  readonly max: number;
  readonly min: number;
  readonly maxUses: number | null;
  readonly maxWaiting: number | null;
  /** The pool's acquireTimeoutMs (0: wait forever): the shared-timer path. */
  readonly acquireTimeoutMs: number;
  readonly validate: boolean;
  readonly reset: boolean;
}

/** Call n of a factory function follows plan[n]; calls past the plan are synchronous and succeed. */
export interface Plans {
  readonly create: readonly CallSpec[];
  readonly validate: readonly CallSpec[];
  readonly reset: readonly CallSpec[];
  readonly destroy: readonly CallSpec[];
}

export interface AcquireSpec {
  readonly how: 'plain' | 'signal' | 'timeout';
  /** The acquire's own timeout, for `timeout`. */
  readonly ms: number;
}

export type Op =
  /** Opens a scope task (withScope) that acquires these at once, then waits until `end`. */
  | { readonly t: 'scope'; readonly timeout: number | null; readonly acquires: readonly AcquireSpec[] }
  /** One more acquire in an open scope (index among them), or outside any scope (null). */
  | { readonly t: 'acquire'; readonly scope: number | null; readonly spec: AcquireSpec }
  /** lease.release() of a lease the code has not released yet (index among them). */
  | { readonly t: 'release'; readonly lease: number }
  | { readonly t: 'destroy'; readonly lease: number }
  /** Aborts the signal of an acquire made with one (index among those not aborted yet; `waiting`: among those still waiting, if any). */
  | { readonly t: 'abort'; readonly acquire: number; readonly waiting: boolean }
  /** The scope's body returns without releasing anything: the scope reclaims its leases. */
  | { readonly t: 'end'; readonly scope: number }
  | { readonly t: 'cancel'; readonly scope: number }
  /** Lets the scheduler finish `n` held factory calls (it picks which). */
  | { readonly t: 'tick'; readonly n: number }
  /** Advances fake time: acquire and scope timeouts fire. */
  | { readonly t: 'advance'; readonly ms: number };

export interface PoolProgram {
  readonly pool: PoolSpec;
  readonly plans: Plans;
  readonly ops: readonly Op[];
}

const latencyArb: fc.Arbitrary<Latency> = fc.constantFrom<Latency>('sync', 'micro', 'sched', 'sched');

/** A call spec that fails about once in `oneIn` (and shrinks towards not failing). */
const callArb = (oneIn: number): fc.Arbitrary<CallSpec> =>
  fc.record({ latency: latencyArb, fail: fc.nat(oneIn - 1).map((n) => n === oneIn - 1) });

const planArb = (oneIn: number) => fc.array(callArb(oneIn), { maxLength: 12, size: 'medium' });

export const poolSpecArb: fc.Arbitrary<PoolSpec> = fc
  .record({
    max: fc.integer({ min: 1, max: 4 }),
    min: fc.nat(4),
    maxUses: fc.option(fc.integer({ min: 1, max: 3 }), { freq: 3, nil: null }),
    maxWaiting: fc.option(fc.nat(3), { freq: 3, nil: null }),
    acquireTimeoutMs: fc.constantFrom(0, 0, 4, 12),
    validate: fc.boolean(),
    reset: fc.boolean(),
  })
  .map((p) => ({ ...p, min: Math.min(p.min, p.max) }));

const acquireSpecArb: fc.Arbitrary<AcquireSpec> = fc.record({
  how: fc.constantFrom('plain' as const, 'plain' as const, 'signal' as const, 'timeout' as const),
  ms: fc.integer({ min: 1, max: 8 }),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('scope' as const),
      timeout: fc.option(fc.integer({ min: 1, max: 10 }), { freq: 3, nil: null }),
      acquires: fc.array(acquireSpecArb, { maxLength: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant('acquire' as const), scope: fc.option(fc.nat(3), { freq: 6, nil: null }), spec: acquireSpecArb }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('release' as const), lease: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('destroy' as const), lease: fc.nat(5) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('abort' as const), acquire: fc.nat(5), waiting: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('end' as const), scope: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('cancel' as const), scope: fc.nat(3) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('tick' as const), n: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 10 }) }) },
);

export const poolProgramArb: fc.Arbitrary<PoolProgram> = fc.record({
  pool: poolSpecArb,
  plans: fc.record({ create: planArb(4), validate: planArb(4), reset: planArb(6), destroy: planArb(6) }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 30, size: 'max' }),
});

// --- showing a program ----------------------------------------------------------------------------

function showAcquire(a: AcquireSpec): string {
  return a.how === 'timeout' ? `timeout ${a.ms}ms` : a.how;
}

function showPlan(plan: readonly CallSpec[], failWord: string): string {
  if (plan.length === 0) return '(all sync, ok)';
  return `${plan.map((c, i) => `#${i + 1} ${c.latency}${c.fail ? ` ${failWord}` : ''}`).join(', ')}, then sync ok`;
}

export function showOp(op: Op): string {
  switch (op.t) {
    case 'scope':
      return `scope${op.timeout === null ? '' : ` timeout=${op.timeout}ms`} acquiring [${op.acquires.map(showAcquire).join(', ')}]`;
    case 'acquire':
      return `acquire ${showAcquire(op.spec)} in ${op.scope === null ? 'no scope' : `open scope #${op.scope}`}`;
    case 'release':
    case 'destroy':
      return `${op.t} held lease #${op.lease}`;
    case 'abort':
      return `abort signal of ${op.waiting ? 'waiting ' : ''}acquire #${op.acquire}`;
    case 'end':
    case 'cancel':
      return `${op.t} open scope #${op.scope}`;
    case 'tick':
      return `tick ${op.n}`;
    case 'advance':
      return `advance ${op.ms}ms`;
  }
}

/** A readable form of a program, for failure messages. */
export function showPoolProgram(program: PoolProgram): string {
  const p = program.pool;
  const lines = [
    `pool: max=${p.max} min=${p.min} maxUses=${p.maxUses ?? '-'} maxWaiting=${p.maxWaiting ?? '-'} acquireTimeoutMs=${p.acquireTimeoutMs} validate=${p.validate} reset=${p.reset}`,
    `create:   ${showPlan(program.plans.create, 'FAILS')}`,
    ...(p.validate ? [`validate: ${showPlan(program.plans.validate, 'FALSE')}`] : []),
    ...(p.reset ? [`reset:    ${showPlan(program.plans.reset, 'FAILS')}`] : []),
    `destroy:  ${showPlan(program.plans.destroy, 'FAILS')}`,
    'ops:',
    ...program.ops.map((op, i) => `  ${i}: ${showOp(op)}`),
  ];
  return lines.join('\n');
}

// --- interpreter state ----------------------------------------------------------------------------

/** A fake resource: an object per create, with an id. */
export interface FakeResource {
  readonly id: number;
}

interface ResRec {
  readonly value: FakeResource;
  /** create returned it (synchronously, or its promise resolved). */
  delivered: boolean;
  destroyCalls: number;
  /** Its destroy has finished: the server no longer holds it. */
  gone: boolean;
  readonly leases: LeaseRec[];
  /** Why it must never be handed out again (validate said false, reset failed, destroyed by a lease). */
  broken: string | undefined;
  /** Leased since its last successful reset (only tracked when the factory has reset). */
  dirty: boolean;
}

interface AcqRec {
  readonly label: string;
  readonly scope: ScopeRec | null;
  readonly spec: AcquireSpec;
  readonly controller: AbortController | undefined;
  aborted: boolean;
  readonly t0: number;
  readonly deadline: number;
  /** stats().pending just before the call. */
  readonly pendingBefore: number;
  state: 'pending' | 'resolved' | 'rejected';
  error: unknown;
  /** It gave up while waiting (its signal aborted, its scope was cancelled or closed): it must reject with `reason`. */
  gaveUp: { readonly why: string; readonly reason: unknown; readonly closed: boolean } | undefined;
  promise: Promise<Lease<FakeResource>> | undefined;
}

interface LeaseRec {
  readonly label: string;
  readonly acq: AcqRec;
  readonly lease: Lease<FakeResource>;
  readonly res: ResRec;
  /** What the code did with it (not the scope). */
  code: 'release' | 'destroy' | null;
  /** Its return's promise (the code's call, or lease.release() after the scope reclaimed it) is attached. */
  watched: boolean;
  /** That promise settled: the pool has it back (or destroyed it). */
  returnDone: boolean;
  /** Its scope gave it back, not the code. */
  reclaimed: boolean;
}

interface ScopeRec {
  readonly label: string;
  readonly timeout: number | null;
  scope: Scope | undefined;
  readonly end: () => void;
  ended: boolean;
  cancelled: boolean;
  /** Its signal aborted: a cancellation (while open) or its close. */
  abort: { readonly reason: unknown; readonly whileOpen: boolean } | undefined;
  settled: { ok: boolean; error: unknown } | undefined;
  readonly acquires: AcqRec[];
}

/** What the interpreter needs of a pool; the sanity tests wrap a real pool to break it on purpose. */
export interface PoolLike {
  acquire(options?: AcquireOptions): Promise<Lease<FakeResource>>;
  stats(): PoolStats;
  close(): Promise<void>;
}

export interface RunOptions {
  /** Wraps the pool the interpreter drives (sanity checks of the checker). */
  readonly wrap?: (pool: PoolLike) => PoolLike;
  /**
   * Also check liveness: no acquire waits uncovered while a resource sits idle, or with nothing
   * borrowed or under way, and none is left waiting forever at the end. Default true.
   */
  readonly liveness?: boolean;
}

export interface PoolRunResult {
  readonly violations: readonly string[];
  readonly trace: readonly string[];
  /** stats() once close() resolved (checked by its own test: see pool-programs.test.ts). */
  readonly closeStats?: PoolStats;
}

interface Ctx {
  readonly program: PoolProgram;
  readonly s: fc.Scheduler;
  pool: PoolLike;
  readonly violations: string[];
  readonly trace: string[];
  readonly resources: ResRec[];
  readonly byValue: Map<FakeResource, ResRec>;
  readonly acquires: AcqRec[];
  readonly leases: LeaseRec[];
  readonly scopes: ScopeRec[];
  readonly calls: { create: number; validate: number; reset: number; destroy: number };
  /** create and validate calls that have not returned yet. */
  readonly running: { create: number; validate: number; destroy: number };
  readonly createErrors: Set<unknown>;
  /** Promises the interpreter started and must see settle (bodies, returns). */
  readonly pending: Set<Promise<unknown>>;
  readonly liveness: boolean;
  step: string;
}

const now = () => performance.now();

function check(ctx: Ctx, ok: boolean, message: () => string): void {
  if (!ok) ctx.violations.push(`[${ctx.step}] ${message()}`);
}

function log(ctx: Ctx, line: string): void {
  ctx.trace.push(`t=${Math.round(now() - TIME_BASE)} ${line}`);
}

let TIME_BASE = 0;

function describeValue(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message.split('\n')[0] ?? ''}`;
  return String(value);
}

function track(ctx: Ctx, promise: Promise<unknown>): void {
  ctx.pending.add(promise);
  const forget = () => void ctx.pending.delete(promise);
  promise.then(forget, forget);
}

/** Lets microtasks and setImmediate callbacks run (fake timers leave setImmediate real). */
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

// --- the fake factory -----------------------------------------------------------------------------

/** Leases of `res` the pool has not taken back (the library's own flag). */
function heldLeases(res: ResRec): LeaseRec[] {
  return res.leases.filter((l) => !l.lease.released);
}

function planned(plan: readonly CallSpec[], n: number): CallSpec {
  return plan[n] ?? { latency: 'sync', fail: false };
}

/** Runs `finish` now, after a microtask, or when the scheduler lets the call go. */
function settleCall<R>(ctx: Ctx, spec: CallSpec, label: string, finish: () => R): R | Promise<R> {
  if (spec.latency === 'sync') return finish();
  if (spec.latency === 'micro') return Promise.resolve().then(finish);
  return ctx.s.schedule(Promise.resolve(), label).then(finish);
}

/** Checks on a resource the pool passes to validate, reset or destroy. */
function checkIdleResource(ctx: Ctx, value: unknown, what: string): ResRec | undefined {
  check(ctx, currentScope() === undefined, () => `${what} ran inside scope #${String(currentScope()?.id)}`);
  const res = ctx.byValue.get(value as FakeResource);
  if (res === undefined) {
    check(ctx, false, () => `${what} got ${String(value)}, which the factory never created`);
    return undefined;
  }
  check(ctx, res.delivered, () => `${what} got r${res.value.id} before its create finished`);
  const held = heldLeases(res);
  check(ctx, held.length === 0, () => `${what} of r${res.value.id} while lease ${held.map((l) => l.label).join(', ')} holds it`);
  return res;
}

function makeFactory(ctx: Ctx): PoolFactory<FakeResource> {
  const { plans, pool } = ctx.program;
  const factory: PoolFactory<FakeResource> = {
    create: () => {
      check(ctx, currentScope() === undefined, () => `create ran inside scope #${String(currentScope()?.id)}`);
      const n = ctx.calls.create++;
      const spec = planned(plans.create, n);
      const label = `create#${n + 1}${spec.fail ? ' (fails)' : ''}`;
      ctx.running.create++;
      return settleCall(ctx, spec, label, () => {
        ctx.running.create--;
        if (spec.fail) {
          const error = new Error(`create#${n + 1} failed`);
          ctx.createErrors.add(error);
          log(ctx, `${label}: failed`);
          throw error;
        }
        const value: FakeResource = { id: ctx.resources.length + 1 };
        const res: ResRec = { value, delivered: true, destroyCalls: 0, gone: false, leases: [], broken: undefined, dirty: false };
        ctx.resources.push(res);
        ctx.byValue.set(value, res);
        log(ctx, `${label}: made r${value.id}`);
        return value;
      });
    },
    destroy: (value) => {
      const n = ctx.calls.destroy++;
      const spec = planned(plans.destroy, n);
      const res = checkIdleResource(ctx, value, `destroy#${n + 1}`);
      if (res !== undefined) {
        res.destroyCalls++;
        check(ctx, res.destroyCalls === 1, () => `r${res.value.id} destroyed ${res.destroyCalls} times`);
      }
      const label = `destroy#${n + 1} r${res?.value.id ?? '?'}${spec.fail ? ' (fails)' : ''}`;
      log(ctx, label);
      ctx.running.destroy++;
      return settleCall(ctx, spec, label, () => {
        ctx.running.destroy--;
        if (res !== undefined) res.gone = true; // the "server" has let go of it
        if (spec.fail) throw new Error(`${label} failed`);
      });
    },
  };
  if (pool.validate) {
    factory.validate = (value) => {
      const n = ctx.calls.validate++;
      const spec = planned(plans.validate, n);
      const res = checkIdleResource(ctx, value, `validate#${n + 1}`);
      check(ctx, res === undefined || res.destroyCalls === 0, () => `validate of destroyed r${res?.value.id}`);
      const label = `validate#${n + 1} r${res?.value.id ?? '?'} -> ${spec.fail ? 'false' : 'true'}`;
      log(ctx, label);
      ctx.running.validate++;
      return settleCall(ctx, spec, label, () => {
        ctx.running.validate--;
        if (spec.fail && res !== undefined) res.broken ??= `validate#${n + 1} said false`;
        return !spec.fail;
      });
    };
  }
  if (pool.reset) {
    factory.reset = (value) => {
      const n = ctx.calls.reset++;
      const spec = planned(plans.reset, n);
      const res = checkIdleResource(ctx, value, `reset#${n + 1}`);
      check(ctx, res === undefined || res.destroyCalls === 0, () => `reset of destroyed r${res?.value.id}`);
      const label = `reset#${n + 1} r${res?.value.id ?? '?'}${spec.fail ? ' (fails)' : ''}`;
      log(ctx, label);
      return settleCall(ctx, spec, label, () => {
        if (spec.fail) {
          if (res !== undefined) res.broken ??= `reset#${n + 1} failed`;
          throw new Error(`${label} failed`);
        }
        if (res !== undefined) res.dirty = false;
      });
    };
  }
  return factory;
}

// --- acquiring ------------------------------------------------------------------------------------

function startAcquire(
  ctx: Ctx,
  scope: ScopeRec | null,
  spec: AcquireSpec,
  call: (acquire: () => Promise<Lease<FakeResource>>) => Promise<Lease<FakeResource>>,
): void {
  const label = `a${ctx.acquires.length + 1}`;
  const controller = spec.how === 'signal' ? new AbortController() : undefined;
  const options: AcquireOptions | undefined =
    spec.how === 'signal' ? { signal: (controller as AbortController).signal } : spec.how === 'timeout' ? { timeout: spec.ms } : undefined;
  const t0 = now();
  const timeoutMs = spec.how === 'timeout' ? spec.ms : ctx.program.pool.acquireTimeoutMs;
  const acq: AcqRec = {
    label,
    scope,
    spec,
    controller,
    aborted: false,
    t0,
    deadline: timeoutMs > 0 ? t0 + timeoutMs : Infinity,
    pendingBefore: ctx.pool.stats().pending,
    state: 'pending',
    error: undefined,
    gaveUp: undefined,
    promise: undefined,
  };
  ctx.acquires.push(acq);
  scope?.acquires.push(acq);
  log(ctx, `${label}: acquire ${showAcquire(spec)} in ${scope?.label ?? 'no scope'}`);
  let promise: Promise<Lease<FakeResource>>;
  try {
    promise = acq.promise = call(() => ctx.pool.acquire(options));
  } catch (error) {
    check(ctx, false, () => `${label}: acquire threw synchronously: ${describeValue(error)}`);
    acq.state = 'rejected';
    return;
  }
  const observed = promise.then(
    (lease) => onLease(ctx, acq, lease),
    (error: unknown) => onRejected(ctx, acq, error),
  );
  track(ctx, observed);
}

function onLease(ctx: Ctx, acq: AcqRec, lease: Lease<FakeResource>): void {
  acq.state = 'resolved';
  const t = now();
  check(ctx, acq.gaveUp === undefined, () => `${acq.label} gave up (${acq.gaveUp?.why}) but then got a lease`);
  check(ctx, t <= acq.deadline, () => `${acq.label} got a lease ${t - acq.deadline} ms after its deadline`);
  if (lease.released) {
    check(ctx, false, () => `${acq.label} got a lease that was already released`);
    return;
  }
  const value = lease.value;
  const res = ctx.byValue.get(value);
  if (res === undefined) {
    check(ctx, false, () => `${acq.label} got ${JSON.stringify(value)}, which the factory never created`);
    return;
  }
  const label = `L${ctx.leases.length + 1}`;
  log(ctx, `${acq.label}: got r${res.value.id} as ${label}`);
  check(ctx, res.delivered, () => `${acq.label} got r${res.value.id} before its create finished`);
  check(ctx, res.destroyCalls === 0, () => `${acq.label} got r${res.value.id}, which was destroyed`);
  const held = heldLeases(res);
  check(ctx, held.length === 0, () => `${acq.label} got r${res.value.id} while ${held.map((l) => l.label).join(', ')} still holds it`);
  check(ctx, res.broken === undefined, () => `${acq.label} got r${res.value.id}, which must not be handed out again: ${res.broken}`);
  const { maxUses } = ctx.program.pool;
  check(
    ctx,
    maxUses === null || res.leases.length < maxUses,
    () => `${acq.label} got r${res.value.id} for use ${res.leases.length + 1}, maxUses is ${maxUses}`,
  );
  if (ctx.program.pool.reset) {
    check(ctx, !res.dirty, () => `${acq.label} got r${res.value.id}, not reset since ${res.leases.at(-1)?.label} returned it`);
    res.dirty = true;
  }
  const scopeState = acq.scope?.scope?.state;
  check(
    ctx,
    scopeState === undefined || scopeState !== 'closed',
    () => `${acq.label} got a held lease after its scope ${acq.scope?.label} closed`,
  );
  const rec: LeaseRec = { label, acq, lease, res, code: null, watched: false, returnDone: false, reclaimed: false };
  ctx.leases.push(rec);
  res.leases.push(rec);
}

/** Every rejection must have a cause the program can point at. */
function onRejected(ctx: Ctx, acq: AcqRec, error: unknown): void {
  acq.state = 'rejected';
  acq.error = error;
  const t = now();
  const { maxWaiting } = ctx.program.pool;
  log(ctx, `${acq.label}: rejected with ${describeValue(error)}`);
  if (acq.gaveUp !== undefined) {
    const { why, reason, closed } = acq.gaveUp;
    check(
      ctx,
      error === reason || (closed && error instanceof ScopeClosedError),
      () => `${acq.label} gave up (${why}) but was rejected with ${describeValue(error)}`,
    );
    return;
  }
  if (error instanceof PoolTimeoutError) {
    check(ctx, t >= acq.deadline, () => `${acq.label} timed out at t=${t - acq.t0} ms, its deadline is ${acq.deadline - acq.t0} ms`);
  } else if (error instanceof PoolFullError) {
    check(
      ctx,
      maxWaiting !== null && acq.pendingBefore >= maxWaiting,
      () => `${acq.label}: PoolFullError with ${acq.pendingBefore} waiting, maxWaiting ${String(maxWaiting)}`,
    );
  } else if (error instanceof PoolCreateError) {
    check(
      ctx,
      ctx.createErrors.has(error.cause),
      () => `${acq.label}: PoolCreateError whose cause is not a create failure: ${describeValue(error.cause)}`,
    );
    const borrowed = ctx.pool.stats().borrowed;
    check(ctx, borrowed === 0, () => `${acq.label}: PoolCreateError ("nothing else could serve") while ${borrowed} resources are borrowed`);
  } else if (acq.scope !== null && acq.scope.scope !== undefined && acq.scope.abort !== undefined) {
    // Acquired in a scope that was already cancelled or closing: rejected with its reason.
    const { reason } = acq.scope.abort;
    check(
      ctx,
      error === reason || error instanceof ScopeClosedError,
      () => `${acq.label} in the ended ${acq.scope?.label} rejected with ${describeValue(error)}, not its reason`,
    );
  } else {
    check(ctx, false, () => `${acq.label} rejected for no reason the program gave: ${describeValue(error)}`);
  }
}

// --- operations -----------------------------------------------------------------------------------

/**
 * The acquire's promise has not settled: not even in this very job, before its handler could run
 * (a lease handed out by a release earlier in the same job is not a waiter that gave up).
 */
function stillPending(acq: AcqRec): boolean {
  return acq.promise !== undefined && inspect(acq.promise).includes('<pending>');
}

function openScopes(ctx: Ctx): ScopeRec[] {
  return ctx.scopes.filter((r) => r.scope !== undefined && r.scope.state === 'open' && !r.ended);
}

function onScopeAbort(ctx: Ctx, rec: ScopeRec, scope: Scope): void {
  const whileOpen = scope.state === 'open';
  const reason = scope.signal.reason as unknown;
  rec.abort = { reason, whileOpen };
  log(ctx, `${rec.label}: signal aborted (${whileOpen ? 'cancelled' : 'closing'}): ${describeValue(reason)}`);
  // Its waiters give up now: each must be rejected with the reason (a closing scope: a ScopeClosedError).
  for (const acq of rec.acquires) {
    if (acq.state === 'pending' && acq.gaveUp === undefined && stillPending(acq))
      acq.gaveUp = { why: `${rec.label} ${whileOpen ? 'cancelled' : 'closing'}`, reason, closed: !whileOpen };
  }
}

function openScope(ctx: Ctx, op: Extract<Op, { t: 'scope' }>): void {
  const label = `s${ctx.scopes.length + 1}`;
  let end!: () => void;
  const gate = new Promise<void>((resolve) => (end = resolve));
  const rec: ScopeRec = {
    label,
    timeout: op.timeout,
    scope: undefined,
    end,
    ended: false,
    cancelled: false,
    abort: undefined,
    settled: undefined,
    acquires: [],
  };
  ctx.scopes.push(rec);
  log(ctx, `${label}: open${op.timeout === null ? '' : ` timeout=${op.timeout}ms`}`);
  const task = withScope(
    async (scope) => {
      rec.scope = scope;
      scope.signal.addEventListener('abort', () => onScopeAbort(ctx, rec, scope), { once: true });
      for (const spec of op.acquires) startAcquire(ctx, rec, spec, (acquire) => acquire());
      await gate;
    },
    op.timeout === null ? undefined : { timeout: op.timeout },
  );
  const observed = task.then(
    () => {
      rec.settled = { ok: true, error: undefined };
      log(ctx, `${label}: task resolved`);
    },
    (error: unknown) => {
      rec.settled = { ok: false, error };
      log(ctx, `${label}: task rejected with ${describeValue(error)}`);
    },
  );
  track(ctx, observed);
}

function returnLease(ctx: Ctx, rec: LeaseRec, how: 'release' | 'destroy'): void {
  const wasReleased = rec.lease.released;
  rec.code = how;
  log(ctx, `${rec.label}: ${how}${wasReleased ? ' (already reclaimed)' : ''}`);
  let promise: Promise<void>;
  try {
    promise = how === 'release' ? rec.lease.release() : rec.lease.destroy(new Error(`${rec.label} is broken`));
  } catch (error) {
    check(ctx, false, () => `${rec.label}.${how}() threw synchronously: ${describeValue(error)}`);
    return;
  }
  check(ctx, rec.lease.released, () => `${rec.label} is not released after ${how}()`);
  if (how === 'destroy' && !wasReleased) rec.res.broken ??= `${rec.label}.destroy()`;
  watchReturn(ctx, rec, promise, `${how}()`, how === 'destroy' && !wasReleased);
}

/** Watches the return of a lease; `destroys`: it must have destroyed the resource by the time it resolves. */
function watchReturn(ctx: Ctx, rec: LeaseRec, promise: Promise<void>, what: string, destroys: boolean): void {
  if (rec.watched) return;
  rec.watched = true;
  const observed = promise.then(
    () => {
      rec.returnDone = true;
      if (destroys)
        check(
          ctx,
          rec.res.destroyCalls === 1,
          () => `${rec.label}.${what} resolved, but r${rec.res.value.id} was destroyed ${rec.res.destroyCalls} times`,
        );
    },
    (error: unknown) => {
      rec.returnDone = true;
      check(ctx, false, () => `${rec.label}.${what} rejected: ${describeValue(error)} (a pool's release never rejects)`);
    },
  );
  track(ctx, observed);
}

/** Leases the scope reclaimed: lease.release() now returns the promise of that return. */
function watchReclaimed(ctx: Ctx): boolean {
  let attached = false;
  for (const rec of ctx.leases) {
    if (rec.watched || !rec.lease.released) continue;
    attached = true;
    rec.reclaimed = true;
    // A scope whose timeout cut off its running body destroys what the body held: its state is unknown.
    const scope = rec.acq.scope;
    const cutOff = scope !== null && scope.timeout !== null && scope.abort?.whileOpen === true;
    if (cutOff) rec.res.broken ??= `${scope.label} was cancelled while ${rec.label} held it`;
    log(ctx, `${rec.label}: reclaimed by ${scope?.label ?? 'no scope'}${cutOff ? ' (must be destroyed)' : ''}`);
    watchReturn(ctx, rec, rec.lease.release(), 'release() after reclaim', cutOff);
  }
  return attached;
}

async function applyOp(ctx: Ctx, op: Op): Promise<void> {
  switch (op.t) {
    case 'scope':
      openScope(ctx, op);
      return;
    case 'acquire': {
      if (op.scope === null) {
        startAcquire(ctx, null, op.spec, (acquire) => acquire());
        return;
      }
      const open = openScopes(ctx);
      const rec = open[op.scope % Math.max(1, open.length)];
      if (rec === undefined) return;
      startAcquire(ctx, rec, op.spec, (acquire) => (rec.scope as Scope).run(acquire));
      return;
    }
    case 'release':
    case 'destroy': {
      const candidates = ctx.leases.filter((l) => l.code === null);
      const rec = candidates[op.lease % Math.max(1, candidates.length)];
      if (rec !== undefined) returnLease(ctx, rec, op.t);
      return;
    }
    case 'abort': {
      const signalled = ctx.acquires.filter((a) => a.controller !== undefined && !a.aborted);
      const waiting = signalled.filter((a) => a.state === 'pending');
      const candidates = op.waiting && waiting.length > 0 ? waiting : signalled;
      const acq = candidates[op.acquire % Math.max(1, candidates.length)];
      if (acq === undefined) return;
      acq.aborted = true;
      const reason = new Error(`${acq.label} aborted`);
      if (acq.state === 'pending' && stillPending(acq)) acq.gaveUp = { why: 'its signal aborted', reason, closed: false };
      log(ctx, `${acq.label}: abort (${acq.state})`);
      acq.controller?.abort(reason);
      return;
    }
    case 'end':
    case 'cancel': {
      const open = openScopes(ctx);
      const rec = open[op.scope % Math.max(1, open.length)];
      if (rec === undefined) return;
      if (op.t === 'end') {
        rec.ended = true;
        log(ctx, `${rec.label}: end (body returns)`);
        rec.end();
      } else {
        rec.cancelled = true;
        log(ctx, `${rec.label}: cancel`);
        rec.scope?.cancel();
      }
      return;
    }
    case 'tick':
      for (let i = 0; i < op.n && ctx.s.count() > 0; i++) {
        await ctx.s.waitNext(1);
        await flush();
      }
      return;
    case 'advance':
      await vi.advanceTimersByTimeAsync(op.ms);
      return;
  }
}

// --- checks ---------------------------------------------------------------------------------------

/** Lets everything run that can without the scheduler or the clock, and watches reclaimed leases. */
async function settle(ctx: Ctx): Promise<void> {
  for (let round = 0; round < 50; round++) {
    await flush();
    await flush();
    if (!watchReclaimed(ctx)) return;
  }
  ctx.violations.push(`[${ctx.step}] the program did not settle`);
}

/** The invariants that hold whenever everything that can run has run. */
function checkStep(ctx: Ctx): void {
  const stats = ctx.pool.stats();
  const { max, min } = ctx.program.pool;
  const show = () => JSON.stringify(stats);
  const counts = [stats.size, stats.available, stats.borrowed, stats.pending];
  check(
    ctx,
    counts.every((n) => Number.isInteger(n) && n >= 0),
    () => `stats has a negative or fractional count: ${show()}`,
  );
  check(ctx, stats.max === max && stats.min === min, () => `stats min/max ${stats.min}/${stats.max}, configured ${min}/${max}`);
  check(ctx, stats.available + stats.borrowed <= stats.size, () => `available + borrowed > size: ${show()}`);
  check(ctx, stats.size <= max, () => `size > max: ${show()}`);
  // max bounds what the server holds: made, and not yet let go of by a finished destroy.
  const live = ctx.resources.filter((r) => !r.gone).length;
  check(ctx, live <= max, () => `${live} resources live on the server, max is ${max}: ${show()}`);
  check(
    ctx,
    stats.destroying === ctx.running.destroy,
    () => `destroying is ${stats.destroying}, but ${ctx.running.destroy} destroys are running: ${show()}`,
  );
  // With nothing being created or validated, every resource is idle, borrowed or being destroyed.
  if (ctx.running.create === 0 && ctx.running.validate === 0) {
    check(
      ctx,
      stats.size === stats.available + stats.borrowed + stats.destroying,
      () => `nothing is being created or validated, yet size !== available + borrowed + destroying: ${show()}`,
    );
  }

  // borrowed: the leases handed out whose return has not finished.
  const out = ctx.leases.filter((l) => !l.returnDone);
  check(
    ctx,
    stats.borrowed === out.length,
    () =>
      `borrowed is ${stats.borrowed}, but ${out.length} leases are out: [${out.map((l) => `${l.label}=r${l.res.value.id}`).join(', ')}] (${show()})`,
  );
  // pending: the acquires that have not settled.
  const waiting = ctx.acquires.filter((a) => a.state === 'pending');
  check(
    ctx,
    stats.pending === waiting.length,
    () => `pending is ${stats.pending}, but ${waiting.length} acquires wait: [${waiting.map((a) => a.label).join(', ')}] (${show()})`,
  );

  // No resource is out twice.
  const seen = new Map<ResRec, LeaseRec>();
  for (const l of out) {
    const other = seen.get(l.res);
    check(ctx, other === undefined, () => `r${l.res.value.id} is out twice: ${other?.label} and ${l.label}`);
    seen.set(l.res, l);
  }

  // Nobody waits uncovered while a resource sits idle (each waiter may be covered by one being
  // created or validated), or while nothing is borrowed or under way that could serve it.
  if (stats.pending > 0 && ctx.liveness) {
    const inFlight = stats.size - stats.available - stats.borrowed - stats.destroying;
    if (stats.available > 0)
      check(
        ctx,
        stats.pending <= inFlight,
        () => `${stats.pending} acquires wait, ${inFlight} resources are on their way, and ${stats.available} sit idle (${show()})`,
      );
    // A destroy under way frees room when it finishes: that serves a waiter too.
    check(
      ctx,
      stats.borrowed > 0 || inFlight > 0 || stats.destroying > 0,
      () => `${stats.pending} acquires wait with nothing borrowed or under way: they can never be served (${show()})`,
    );
  }

  const t = now();
  for (const acq of ctx.acquires) {
    // A waiter past its deadline has timed out.
    if (acq.state === 'pending') check(ctx, acq.deadline > t, () => `${acq.label} still waits ${t - acq.deadline} ms past its deadline`);
    // A waiter that gave up is rejected at once.
    if (acq.gaveUp !== undefined)
      check(ctx, acq.state === 'rejected', () => `${acq.label} gave up (${acq.gaveUp?.why}) but is ${acq.state}`);
  }

  for (const l of ctx.leases) {
    const scope = l.acq.scope;
    // A lease nobody gave back stays held while its scope is open.
    if (l.code === null && (scope === null || scope.scope?.state === 'open')) {
      check(ctx, !l.lease.released, () => `${l.label} was released though neither the code nor its scope gave it back`);
    }
    // A closed scope gave back everything it held, and waited for it.
    if (scope !== null && scope.settled !== undefined) {
      check(ctx, l.lease.released, () => `${l.label} is still held after its scope ${scope.label} settled`);
      if (l.code === null) check(ctx, l.returnDone, () => `${scope.label} settled before its reclaim of ${l.label} finished`);
    }
  }

  for (const rec of ctx.scopes) {
    if (rec.settled === undefined || rec.scope === undefined) continue;
    check(ctx, rec.scope.state === 'closed', () => `${rec.label}'s task settled but the scope is ${rec.scope?.state}`);
    // The task answers with the cancellation reason when cancelled while running, else with success.
    if (rec.abort?.whileOpen === true)
      check(
        ctx,
        !rec.settled.ok && rec.settled.error === rec.abort.reason,
        () =>
          `${rec.label} was cancelled but its task settled with ${rec.settled?.ok === true ? 'success' : describeValue(rec.settled?.error)}`,
      );
    else check(ctx, rec.settled.ok, () => `${rec.label}'s task rejected with ${describeValue(rec.settled?.error)}`);
  }
}

// --- the whole program -----------------------------------------------------------------------------

function poolOptions(spec: PoolSpec): PoolOptions {
  return {
    name: 'prop',
    kind: 'fake resource',
    max: spec.max,
    min: spec.min,
    maxUses: spec.maxUses ?? 0,
    ...(spec.maxWaiting === null ? {} : { maxWaiting: spec.maxWaiting }),
    acquireTimeoutMs: spec.acquireTimeoutMs,
    idleTimeoutMs: 0, // no eviction runs: time is the program's
  };
}

/**
 * Runs `program` with `s` ordering the factory's held calls. Fake timers (setTimeout,
 * clearTimeout, performance) must be installed. Returns the violations and a trace of events.
 */
export async function runPoolProgram(program: PoolProgram, s: fc.Scheduler, options: RunOptions = {}): Promise<PoolRunResult> {
  vi.clearAllTimers(); // nothing left over from an earlier run (one abandoned on a violation) fires in this one
  TIME_BASE = now();
  const ctx: Ctx = {
    program,
    s,
    pool: undefined as unknown as PoolLike,
    violations: [],
    trace: [],
    resources: [],
    byValue: new Map(),
    acquires: [],
    leases: [],
    scopes: [],
    calls: { create: 0, validate: 0, reset: 0, destroy: 0 },
    running: { create: 0, validate: 0, destroy: 0 },
    createErrors: new Set(),
    pending: new Set(),
    liveness: options.liveness ?? true,
    step: 'createPool',
  };
  const real = createPool(makeFactory(ctx), poolOptions(program.pool));
  ctx.pool = options.wrap === undefined ? real : options.wrap(real);
  const result = await run(ctx);
  const copy = { ...result, violations: [...result.violations], trace: [...result.trace] };
  if (copy.violations.length > 0) await abandon(ctx);
  return copy;
}

/** After a violation: lets go of everything the run still holds, so that it does not disturb the next run. */
async function abandon(ctx: Ctx): Promise<void> {
  for (const rec of ctx.scopes) rec.end();
  for (const l of ctx.leases) if (!l.lease.released) l.lease.release().catch(() => undefined);
  const runScheduled = async () => {
    for (let i = 0; i < 200 && ctx.s.count() > 0; i++) {
      await ctx.s.waitNext(1);
      await flush();
    }
  };
  await runScheduled();
  ctx.pool.close().catch(() => undefined);
  await runScheduled();
  await flush();
  vi.clearAllTimers();
}

async function run(ctx: Ctx): Promise<PoolRunResult> {
  await settle(ctx);
  checkStep(ctx);

  for (const [i, op] of ctx.program.ops.entries()) {
    ctx.step = `op ${i}: ${showOp(op)}`;
    await applyOp(ctx, op);
    await settle(ctx);
    checkStep(ctx);
    if (ctx.violations.length > 0) return { violations: ctx.violations, trace: ctx.trace };
  }

  // The end: every task ends, leases outside scopes are given back, held factory calls finish.
  ctx.step = 'drain';
  for (let round = 0; ; round++) {
    if (round === 500) {
      ctx.violations.push('[drain] the program did not finish after 500 rounds');
      break;
    }
    // One task ends per round, as one operation would end it.
    const task = ctx.scopes.find((rec) => !rec.ended);
    if (task !== undefined) {
      task.ended = true;
      log(ctx, `${task.label}: end (drain)`);
      task.end();
      await settle(ctx);
    }
    for (const l of ctx.leases) if (l.code === null && l.acq.scope === null) returnLease(ctx, l, 'release');
    if (ctx.s.count() > 0) await ctx.s.waitNext(1);
    else if (ctx.acquires.some((a) => a.state === 'pending')) await vi.advanceTimersByTimeAsync(5); // waiters outside scopes may time out
    await settle(ctx);
    checkStep(ctx);
    if (ctx.violations.length > 0) return { violations: ctx.violations, trace: ctx.trace };
    const busy =
      ctx.s.count() > 0 ||
      ctx.pending.size > 0 ||
      ctx.acquires.some((a) => a.state === 'pending') ||
      ctx.leases.some((l) => !l.returnDone || (l.code === null && l.acq.scope === null));
    if (!busy) break;
    // Nothing scheduled, nothing pending in the program, yet something waits with no deadline: stuck.
    if (ctx.s.count() === 0 && ctx.acquires.some((a) => a.state === 'pending' && a.deadline === Infinity) && round > 50 && ctx.liveness) {
      ctx.violations.push(
        `[drain] acquires ${ctx.acquires
          .filter((a) => a.state === 'pending')
          .map((a) => a.label)
          .join(', ')} wait forever`,
      );
      break;
    }
  }

  ctx.step = 'end';
  const stats = ctx.pool.stats();
  const show = JSON.stringify(stats);
  check(ctx, stats.borrowed === 0, () => `borrowed is ${stats.borrowed} at the end: ${show}`);
  check(ctx, stats.pending === 0, () => `pending is ${stats.pending} at the end: ${show}`);
  check(ctx, stats.size === stats.available, () => `size ${stats.size} is not available ${stats.available} at the end: ${show}`);
  for (const res of ctx.resources) {
    if (res.broken !== undefined)
      check(ctx, res.destroyCalls === 1, () => `r${res.value.id} (${res.broken}) was destroyed ${res.destroyCalls} times before close()`);
  }
  const alive = ctx.resources.filter((r) => r.destroyCalls === 0).length;
  check(ctx, alive === stats.size, () => `created - destroyed = ${alive}, but size is ${stats.size}: ${show}`);
  for (const rec of ctx.scopes) check(ctx, rec.settled !== undefined, () => `${rec.label}'s task never settled`);

  ctx.step = 'close';
  let closed = false;
  let closeError: unknown = undefined;
  track(
    ctx,
    ctx.pool.close().then(
      () => void (closed = true),
      (error: unknown) => {
        closed = true;
        closeError = error;
      },
    ),
  );
  for (let round = 0; !closed; round++) {
    if (round === 200) {
      ctx.violations.push('[close] pool.close() did not finish');
      break;
    }
    if (ctx.s.count() > 0) await ctx.s.waitNext(1);
    await settle(ctx);
  }
  check(ctx, closeError === undefined, () => `pool.close() rejected: ${describeValue(closeError)}`);
  for (const res of ctx.resources)
    check(ctx, res.destroyCalls === 1, () => `r${res.value.id} was destroyed ${res.destroyCalls} times after close()`);
  const closeStats = ctx.pool.stats();
  const late = await ctx.pool.acquire().then(
    (lease) => lease,
    (error: unknown) => error,
  );
  check(ctx, late instanceof PoolClosedError, () => `acquire after close() gave ${describeValue(late)}, not a PoolClosedError`);
  return { violations: ctx.violations, trace: ctx.trace, closeStats };
}
