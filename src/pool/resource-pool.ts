/**
 * A resource pool on generic-pool whose leases belong to the task that acquired them.
 *
 * generic-pool keeps the idle resources (LIFO), creates them, and runs the eviction timer. A
 * resource given back is first kept warm here, still lent to us in generic-pool's count, for up to
 * a second (see `#warm`): the next acquire takes it synchronously, without generic-pool's acquire
 * (a request object and three promise hops, about 1 µs, the larger part of what a lease cost).
 * After that second it goes back to generic-pool, whose evictor then judges it as before.
 * custodian keeps everything a task can feel: the waiters (an acquire that gives up must leave at
 * once and never receive a resource later; a resource reaches its waiter as a lease of the
 * waiter's scope, whoever released it), `min` (refilled with backoff after a failed create, never
 * in a loop), and the count of what is live on the server. generic-pool is asked for a resource
 * only when one can be had within `max` (an idle one, or room to create one), so nobody ever waits
 * in its queue and its busy-looping retry of a failing create (its issue #175) never starts.
 *
 * What counts against `max` is what exists on the server or is on its way there: everything
 * generic-pool counts (idle, lent to us, being created), and what is being destroyed, which
 * generic-pool forgets at once but the server has not let go of yet (see `#live()`). What we have
 * lent out is counted apart: `borrowed` (held by a lease, or being reset), `validating` (checked
 * before it goes to a waiter) and `requested` (asked of generic-pool, on its way to us).
 *
 * Every event (an acquire queued, a resource delivered, returned or destroyed, a create failed, a
 * waiter gave up, the refill timer) ends in `#reconcile()`, the one place that decides what to ask
 * generic-pool for next.
 */
import { channel } from 'node:diagnostics_channel';
import { settings } from '../config/config.js';
import { describe, validateOptions } from '../config/validate.js';
import { PoolClosedError, PoolCreateError, PoolFullError, PoolTimeoutError, ScopeClosedError, withoutStack } from '../errors.js';
import { openLease } from '../lease/acquire.js';
import type { Lease } from '../lease/lease.js';
import { HELD, LeaseState, type PoolRef } from '../lease/lease-state.js';
import { boundaryOf, captureSite, type Boundary, type RawSite } from '../report/sites.js';
import { push, remove, type List } from '../registry/list.js';
import { watchThreshold } from '../registry/sweep.js';
import { channels } from '../report/channels.js';
import { deliver, warnRelease } from '../report/deliver.js';
import { showPool } from '../registry/inspect.js';
import { closeHungMessage, destroyTimeoutMessage, leaseMessages, poolCloseMessage, poolMessages } from '../report/messages.js';
import type { LeakedResource } from '../report/types.js';
import type { ScopeNode } from '../scope/scope-node.js';
import { runInRoot, storage } from '../scope/storage.js';
import { LATE, within } from '../util/deadline.js';
import { isPromiseLike, noop, RESOLVED } from '../util/promises.js';
import { createGenericPool, type Evictor, type GenericPool, type PooledResource } from './generic-pool.js';
import {
  acquireRules,
  closeRules,
  HOOKS_IN_ROOT,
  resolvePoolOptions,
  type AcquireOptions,
  type PoolCloseOptions,
  type PoolFactory,
  type PoolOptions,
  type ResolvedPoolOptions,
} from './options.js';
import type { Pool, PoolDestroyReason, PoolStats } from './pool.js';
import { Slot } from './slot.js';
import { Waiter, WaitQueue, type WaitOwner } from './waiters.js';

const acquireChannel = channel(channels.poolAcquire);
const releaseChannel = channel(channels.poolRelease);
const createChannel = channel(channels.poolCreate);
const destroyChannel = channel(channels.poolDestroy);
const timeoutChannel = channel(channels.poolTimeout);

const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;

/** Each resource's maxLifetimeMs is shortened by up to this share, so that resources made together do not expire together. */
const LIFETIME_JITTER = 0.1;
/** A validate's answer says the resource works: truthy, or undefined (`validate: (c) => c.ping()` resolving nothing answered). */
const works = (answer: unknown): boolean => Boolean(answer) || answer === undefined;

/**
 * How long a returned resource stays warm (with custodian, taken without generic-pool's acquire)
 * before it goes back to generic-pool's idle set, at most; shorter when the evictor runs more often.
 */
const WARM_MS = 1000;

/** The wait before the first retry of a failed `min` refill; it doubles up to REFILL_MAX_MS, with jitter. */
const REFILL_FIRST_MS = 100;
const REFILL_MAX_MS = 30_000;

/** A pool's machinery: what `createPool` returns, seen by its user as a `Pool`. */
export class ResourcePool<T> implements Pool<T> {
  /** The pool's name, as errors, reports and events show it. */
  readonly name: string;
  readonly #factory: PoolFactory<T>;
  /** The factory switches to the root context itself where its validate or reset need it (HOOKS_IN_ROOT). */
  readonly #hooksInRoot: boolean;
  readonly #options: ResolvedPoolOptions;
  readonly #ref: PoolRef;
  /** generic-pool: the idle set (LIFO), creation, the eviction timer. */
  readonly #engine: GenericPool<Slot<T>>;
  readonly #queue: WaitQueue<Lease<T>>;

  // Where the resources are (besides generic-pool's idle set); see the module comment.
  #requested = 0;
  /** Our factory's creates in flight, counted by us: generic-pool's own count lags a finished create by a few ticks. */
  #creating = 0;
  #validating = 0;
  #borrowed = 0;
  #destroying = 0;
  /** The waiter each validation in flight started for (usually none or one): it covers that waiter while it waits. */
  readonly #validatingFor: Waiter<Lease<T>>[] = [];
  /** Slots held by leases, newest at the tail. */
  readonly #leased: List<Slot<T>> = { tail: undefined };
  /**
   * Returned slots kept warm: idle, though generic-pool counts them lent to us; newest at the end,
   * so the oldest (the first to go back to generic-pool) at the start. Only while nobody waits:
   * `#reconcile` hands them to waiters first.
   */
  readonly #warm: Slot<T>[] = [];
  readonly #warmMs: number;
  #coolTimer: NodeJS.Timeout | undefined = undefined;
  /** Slots carrying a create failure that generic-pool still counts. */
  readonly #failed = new Set<Slot<T>>();
  /** Every live slot by its value, for `evict(value)`. */
  readonly #slots = new Map<T, Slot<T>>();

  // Create failures.
  /**
   * Waiters queued up to this one (by `Waiter.seq`) waited through a failed create: no new create
   * is started for them until something changes (a resource comes back or is destroyed, a create
   * works, the refill timer fires). That is what keeps a dead server from being retried in a loop.
   */
  #heldBackUntil = 0;
  #lastCreateError: { readonly error: unknown; readonly at: number } | undefined = undefined;
  /** Failed `min` refills in a row, and the timer of the next try. */
  #refillFailures = 0;
  #refillTimer: NodeJS.Timeout | undefined = undefined;
  /** When validating an idle resource last failed, for timeout messages. */
  #lastValidateFailure = -Infinity;

  /** Stops the sweep watching this pool's own leakThresholdMs. */
  readonly #unwatchHeld: (() => void) | undefined;
  /** Removes it from inspect(). */
  readonly #unshow: () => void;
  #state = OPEN;
  /** True while close() destroys what is still borrowed after its timeout. */
  #forcing = false;
  #closing: Promise<void> | undefined = undefined;
  #drained: (() => void) | undefined = undefined;

  /** @internal Use `createPool`. */
  constructor(factory: PoolFactory<T>, options: PoolOptions | undefined) {
    const o = (this.#options = resolvePoolOptions(factory, options));
    this.name = o.name;
    this.#factory = factory;
    this.#hooksInRoot = (factory as { [HOOKS_IN_ROOT]?: unknown })[HOOKS_IN_ROOT] === true;
    this.#ref = { name: o.name, leakThresholdMs: o.leakThresholdMs };
    const owner: WaitOwner<Lease<T>> = { expire: (w) => this.#expire(w), giveUp: (w, reason) => this.#giveUp(w, reason) };
    this.#queue = new WaitQueue(owner);
    const evictionMs = [o.idleTimeoutMs, o.maxLifetimeMs].filter((ms) => ms > 0);
    const evictionRunMs = evictionMs.length === 0 ? 0 : Math.max(5, Math.min(1000, Math.floor(Math.min(...evictionMs) / 2)));
    this.#warmMs = evictionRunMs === 0 ? WARM_MS : Math.min(WARM_MS, evictionRunMs);
    const shouldEvict = (slot: Slot<T>) => this.#shouldEvict(slot);
    // In the root context: generic-pool's evictor timer chain starts here and keeps its context.
    this.#engine = runInRoot(() =>
      createGenericPool<Slot<T>>(
        { create: () => this.#create(), destroy: (slot) => this.#teardown(slot) },
        {
          max: o.max,
          min: 0, // custodian keeps min itself: generic-pool's refill ignores resources still being destroyed
          fifo: false, // LIFO: the busiest resources stay warm, the rest go idle and can be evicted
          autostart: true,
          evictionRunIntervalMillis: evictionRunMs,
          numTestsPerEvictionRun: o.max,
        },
        class implements Evictor<Slot<T>> {
          evict(_config: unknown, resource: PooledResource<Slot<T>>): boolean {
            return shouldEvict(resource.obj);
          }
        },
        () => this.#destroying,
      ),
    );
    // generic-pool emits these too; custodian reports them itself (events, errors), so they are not lost.
    this.#engine.on('factoryCreateError', noop);
    this.#engine.on('factoryDestroyError', noop);
    this.#unwatchHeld = o.leakThresholdMs > 0 ? watchThreshold(o.leakThresholdMs) : undefined;
    this.#unshow = showPool(this);
    if (o.min > 0) runInRoot(() => this.#reconcile());
  }

  /**
   * Borrows a resource. The lease belongs to the current scope: give it back with `release()` or
   * `await using`, or the scope reclaims it at its end and reports the leak with this line.
   * Rejects with `PoolTimeoutError` after `timeout` (default: the pool's `acquireTimeoutMs`), the
   * signal's reason when `signal` aborts, the scope's reason when the scope is cancelled or closes
   * meanwhile, `PoolFullError` when `maxWaiting` acquires already wait, `PoolCreateError` when
   * creating a resource failed and nothing else could serve it, `PoolClosedError` once `close()` began.
   */
  acquire(options?: AcquireOptions): Promise<Lease<T>> {
    return this.#acquire(options, captureSite(boundaryOf(options, ResourcePool.prototype.acquire)));
  }

  /**
   * @internal For adapters (`lendAbove` in internal.ts): an acquire with no options, its site
   * captured above `boundary`, without a promise of its own (a statement must not pay for checking
   * a constant `{ boundary }`, nor for a promise it only unwraps). Exactly one of `ok` and `fail`
   * is called, never before this returns, and possibly inside another task's release (a waiter is
   * served there): they must not throw, and should only start work whose result goes through a
   * promise of their own.
   */
  lendAbove(boundary: Boundary, ok: (lease: Lease<T>) => void, fail: (reason: unknown) => void): void {
    this.#route(captureSite(boundary), this.#options.acquireTimeoutMs, false, undefined, { ok, fail });
  }

  /**
   * Runs `fn` with a borrowed resource and gives it back when `fn` settles, whatever happens. `fn`
   * also gets the lease: call `lease.destroy(err)` when the resource turned out broken.
   */
  async use<R>(fn: (resource: T, lease: Lease<T>) => R | PromiseLike<R>, options?: AcquireOptions): Promise<Awaited<R>> {
    if (typeof fn !== 'function') throw new TypeError(`pool.use(): fn must be a function, got ${describe(fn)}`);
    const lease = await this.#acquire(options, captureSite(boundaryOf(options, ResourcePool.prototype.use)));
    try {
      return await fn(lease.value, lease);
    } finally {
      await lease.release();
    }
  }

  /**
   * Says that `resource` is dead (its connection closed, the server killed it): an idle one is
   * destroyed at once, a borrowed one when its lease ends, instead of going back to the idle set;
   * either way it is never lent again, and `min` is refilled. For adapters that hear of a dead
   * connection from its client (`end`, `close`, a lost-connection error). Returns false when the
   * pool does not hold `resource` (already destroyed, or never its own).
   */
  evict(resource: T): boolean {
    const slot = this.#slots.get(resource);
    if (slot === undefined || slot.destroyed || slot.evicted) return false;
    slot.evicted = true;
    const warmAt = this.#warm.indexOf(slot); // rare, and the warm set is at most max long
    if (warmAt !== -1) {
      this.#warm.splice(warmAt, 1);
      this.#destroy(slot, 'evicted');
      this.#reconcile();
      return true;
    }
    // Idle (nobody holds it, it is not on its way anywhere): generic-pool's eviction pass asks
    // #shouldEvict about every idle resource, and this one answers yes. Otherwise its holder's
    // release, or its delivery, finds it evicted.
    if (slot.lease === undefined && !this.#engine.isBorrowedResource(slot)) this.#engine.evictNow();
    this.#reconcile();
    return true;
  }

  /** Counts, right now. `size` never exceeds `max`. */
  stats(): PoolStats {
    return {
      size: this.#live(),
      available: this.#idle(),
      borrowed: this.#borrowed,
      pending: this.#queue.length,
      destroying: this.#destroying,
      min: this.#options.min,
      max: this.#options.max,
    };
  }

  /**
   * Closes the pool: acquires fail with `PoolClosedError` from now on (those waiting, too); waits
   * up to `timeout` ms (default 10000; 0: forever) for borrowed resources to come back, then
   * destroys those still out (and reports them, with where they were acquired) and every idle one.
   * Resolves when all are destroyed. Calling it again returns the same promise.
   */
  close(options?: PoolCloseOptions): Promise<void> {
    if (this.#closing !== undefined) return this.#closing;
    try {
      validateOptions('pool.close()', options, closeRules);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#state = CLOSING;
    this.#unshow();
    if (this.#refillTimer !== undefined) clearTimeout(this.#refillTimer);
    this.#refillTimer = undefined;
    if (this.#coolTimer !== undefined) clearTimeout(this.#coolTimer);
    this.#coolTimer = undefined;
    this.#cool(Infinity); // warm slots back to generic-pool, whose clear() destroys the idle ones
    // At once: generic-pool stops evicting once the borrowed resources are back to be destroyed.
    const draining = this.#engine.drain();
    const reason = () => new PoolClosedError(poolMessages.closedWhileWaiting(this.name), this.name);
    for (let w = this.#queue.shift(); w !== undefined; w = this.#queue.shift()) w.reject(reason());
    this.#queue.stop();
    return (this.#closing = this.#shutDown(options?.timeout ?? 10_000, draining));
  }

  /** `await using pool = createPool(...)`: same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // --- deciding -------------------------------------------------------------------------------------

  /**
   * The one place that decides what to ask generic-pool for, after every event: a resource for
   * each waiter nothing is on its way to (except those a failed create holds back), and, unless a
   * refill is backing off, new resources up to `min`. Never more than `#room()`.
   */
  #reconcile(): void {
    if (this.#state !== OPEN) {
      this.#checkDrained();
      return;
    }
    // Warm slots serve waiters before anything is asked of generic-pool (validations in flight
    // already cover their waiters, so one waiter does not get every warm slot checked for it).
    while (this.#queue.length > 0 && this.#warm.length > 0 && this.#queue.length > this.#covered() - this.#requested) {
      this.#offer(this.#warm.pop() as Slot<T>, performance.now());
    }
    // The common case after a release: nobody waits, and min is there.
    if (this.#queue.length === 0 && this.#usable() >= this.#options.min) return;
    // Waiters a failed create held back, and nothing left that could serve them (the validation or
    // the borrowed resource they were counting on is gone): one more attempt for them. Not a loop:
    // an attempt that fails with nothing else under way fails them (see #createFailed).
    if (this.#heldBackUntil !== 0 && !this.#busy() && this.#idle() === 0) this.#retryHeldBack();
    const room = this.#room();
    if (room <= 0) return;
    // Requests serve the oldest waiters; those held back are the oldest too (the queue is in age order).
    const covered = this.#covered();
    let wanted = Math.max(0, this.#queue.length - Math.max(covered, this.#heldBack()));
    // Held back from a new create, not from a resource already idle (one a create for min made).
    wanted = Math.max(wanted, Math.min(this.#queue.length - covered, this.#engineIdle() - this.#engine.pending));
    if (this.#refillTimer === undefined) {
      // New resources up to min (what exists or is coming, destroys aside), within max.
      const create = Math.min(this.#options.min - this.#usable(), this.#options.max - this.#live());
      // generic-pool gives what it has before it creates: to make `create` new ones, also ask for
      // what it has spare (they come straight back). Never for spare ones alone: that would loop.
      if (create > 0) wanted = Math.max(wanted, this.#spare() + create);
    }
    this.#request(Math.min(wanted, room));
  }

  readonly #reconcileLater = (): void => this.#reconcile();

  /** Asks generic-pool for `n` resources: idle ones first, then new ones. */
  #request(n: number): void {
    for (; n > 0; n--) {
      this.#requested++;
      this.#engine.acquire().then(this.#onSlot, this.#onRequestFailed);
    }
  }

  /** Resources that exist or are being created, in generic-pool's count (failure slots aside). */
  #usable(): number {
    return this.#engine.size - this.#failed.size;
  }

  /** What the server holds or will: `#usable()`, and what is still being destroyed. `stats().size`; never above max. */
  #live(): number {
    return this.#usable() + this.#destroying;
  }

  /**
   * What generic-pool will hand to new requests without creating: its idle resources and the creates
   * under way, less what our requests already queued there will take. The creates are our own count:
   * generic-pool counts a finished create twice for a few ticks (in its idle set and among its
   * creates), and reading its count let one more resource than max live on the server.
   */
  #spare(): number {
    return Math.max(0, this.#engineIdle() + this.#creating - this.#engine.pending);
  }

  /**
   * How many more resources may be asked of generic-pool: what it can give without creating, plus
   * what max leaves for new ones.
   */
  #room(): number {
    return this.#spare() + this.#options.max - this.#live();
  }

  /** Idle resources: the warm ones and generic-pool's idle set. */
  #idle(): number {
    return this.#warm.length + this.#engineIdle();
  }

  /** generic-pool's idle set, without failure slots and without what clear() destroyed but left listed. */
  #engineIdle(): number {
    const gp = this.#engine;
    let failedIdle = 0;
    if (this.#failed.size > 0) for (const slot of this.#failed) if (!gp.isBorrowedResource(slot)) failedIdle++;
    return Math.max(0, Math.min(gp.available, gp.size - gp.borrowed) - failedIdle);
  }

  /**
   * Waiters a resource is on its way to: a generic-pool request each, and each validation whose
   * waiter still waits (one that gave up, or was served by a release meanwhile, covers nobody: a
   * hung ping must not hold back the waiters after it).
   */
  #covered(): number {
    let covered = this.#requested;
    for (const waiter of this.#validatingFor) if (this.#queue.has(waiter)) covered++;
    return covered;
  }

  /** How many waiters (the oldest) are held back by a failed create. */
  #heldBack(): number {
    if (this.#heldBackUntil === 0) return 0;
    let n = 0;
    for (let w = this.#queue.head; w !== undefined && w.seq <= this.#heldBackUntil; w = w.newer as Waiter<Lease<T>> | undefined) n++;
    return n;
  }

  /** Something changed that may make a create work (or serve a waiter): held-back waiters get a try again. */
  #retryHeldBack(): void {
    this.#heldBackUntil = 0;
  }

  // --- acquiring ------------------------------------------------------------------------------------

  #acquire(options: AcquireOptions | undefined, raw: RawSite | undefined): Promise<Lease<T>> {
    let timeoutMs = this.#options.acquireTimeoutMs;
    let ownTimeout = false;
    let signal: AbortSignal | undefined;
    if (options !== undefined) {
      try {
        validateOptions('pool.acquire()', options, acquireRules);
      } catch (error) {
        return Promise.reject(error);
      }
      signal = options.signal;
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (options.timeout !== undefined) {
        timeoutMs = options.timeout;
        ownTimeout = true;
      }
    }
    return this.#route(raw, timeoutMs, ownTimeout, signal, undefined) as Promise<Lease<T>>;
  }

  /**
   * An acquire, its options read: with `into` (adapters' lendAbove), its outcome goes to `into`'s
   * callbacks and nothing is returned; without, it is the promise returned.
   */
  #route(
    raw: RawSite | undefined,
    timeoutMs: number,
    ownTimeout: boolean,
    signal: AbortSignal | undefined,
    into: Into<T> | undefined,
  ): Promise<Lease<T>> | undefined {
    const scope = storage.getStore() as ScopeNode | undefined;
    const refusal = this.#refusal(scope);
    if (refusal !== undefined) return refuse(refusal, into);
    const t0 = performance.now();
    // Fastest path: a warm slot (nobody waits while there is one), taken now and lent a microtask
    // later by #takeIdle, as in the fast path below, without generic-pool's acquire.
    const warm = this.#warm.pop();
    if (warm !== undefined) {
      this.#borrowed++; // out of the idle set: counted as borrowed until #takeIdle decides
      const take = () => this.#takeIdle(warm, scope, raw, t0, timeoutMs, ownTimeout, signal);
      if (into === undefined) return RESOLVED.then(take);
      void RESOLVED.then(() => settleInto(into, take));
      return undefined;
    }
    // Fast path: nobody queued and an idle resource at hand. generic-pool hands it over at once, so
    // there is nothing to wait for and no waiter, timer or extra promise is needed (see #takeIdle,
    // which also clears away a failure slot left idle, should that be what it gets).
    if (this.#queue.length === 0 && this.#requested === 0 && this.#engine.available > 0) {
      this.#borrowed++; // out of the idle set already: counted as borrowed until #takeIdle decides
      const taken = this.#engine.acquire().then((slot) => this.#takeIdle(slot, scope, raw, t0, timeoutMs, ownTimeout, signal));
      if (into === undefined) return taken;
      taken.then(into.ok, into.fail);
      return undefined;
    }
    // Waiters nothing is on its way to, this one included, beyond what idle resources and room to
    // create can serve (not counted with no maxWaiting: a burst of acquires queues here).
    const o = this.#options;
    if (o.maxWaiting !== Infinity && this.#queue.length + 1 - this.#covered() - Math.max(0, this.#room()) > o.maxWaiting) {
      return refuse(
        new PoolFullError(poolMessages.full(this.name, o.kind, o.max, this.#queue.length, this.#borrowed, o.maxWaiting), this.name),
        into,
      );
    }
    const deadline = timeoutMs > 0 ? t0 + timeoutMs : Infinity;
    if (into !== undefined) {
      // No promise: the waiter's callbacks are `into`'s, called when a resource comes back (inside
      // its release) or the wait ends. #reconcile hands nothing over before this returns: no slot is warm.
      this.#queue.push(new Waiter(this.#queue.owner, scope, raw, t0, deadline, ownTimeout, signal, into.ok, into.fail));
      this.#reconcile();
      return undefined;
    }
    return new Promise<Lease<T>>((resolve, reject) => {
      this.#queue.push(new Waiter(this.#queue.owner, scope, raw, t0, deadline, ownTimeout, signal, resolve, reject));
      this.#reconcile();
    });
  }

  /** generic-pool gave a slot for one of our requests. */
  readonly #onSlot = (slot: Slot<T>): void => {
    this.#requested--;
    if (slot.destroyed) {
      // generic-pool's clear() (close) destroyed it but left it on its idle list, and handed it out.
      // End generic-pool's loan (its drain waits for every loan); the factory's destroy does not run twice.
      void this.#engine.destroy(slot);
      this.#checkDrained();
      return;
    }
    if (slot.failure !== undefined) {
      void this.#engine.destroy(slot);
      if (this.#state === OPEN) this.#createFailed(slot.failure.waitedThrough, slot.failure.error);
      else this.#checkDrained();
      return;
    }
    if (!slot.delivered) {
      // A new resource: the server works, so whoever a failure held back may try again.
      slot.delivered = true;
      this.#retryHeldBack();
      this.#refillFailures = 0;
    }
    this.#offer(slot, performance.now());
    this.#reconcile();
  };

  /** An idle slot for the oldest waiter: checked first if it must be, destroyed if it is dead or too old; with nobody waiting, idle. */
  #offer(slot: Slot<T>, now: number): void {
    if (this.#state !== OPEN || this.#queue.length === 0) this.#toIdle(slot);
    else if (slot.evicted) this.#destroy(slot, 'evicted');
    else if (slot.expiresAt <= now) this.#destroy(slot, 'max-lifetime');
    else {
      const validate = this.#factory.validate;
      if (validate !== undefined && this.#needsCheck(slot, now)) this.#validate(slot, validate);
      else this.#handOut(slot, now);
    }
  }

  /**
   * Whether an idle resource must be validated before it goes to the oldest waiter: idle long
   * enough, and not made since that waiter began waiting (a resource made for it proves itself by
   * being made; validating it would also let a validate that always fails, with `min` refilling,
   * spin create-validate-destroy for as long as the waiter waits).
   */
  #needsCheck(slot: Slot<T>, now: number): boolean {
    if (now - slot.idleSince < this.#options.validateAfterIdleMs) return false;
    const head = this.#queue.head;
    return !(slot.uses === 0 && head !== undefined && slot.createdAt >= head.t0);
  }

  readonly #onRequestFailed = (): void => {
    // generic-pool rejects an acquire only when draining, which custodian does only after its requests settled.
    this.#requested--;
    this.#checkDrained();
  };

  #validate(slot: Slot<T>, validate: (resource: T) => unknown): void {
    this.#judge(slot, this.#check(slot, validate), this.#queue.head as Waiter<Lease<T>>); // validated only while someone waits
  }

  /** The factory's validate on `slot`'s resource (see #callHook): its answer, or its promise; a throw answers false. */
  #check(slot: Slot<T>, validate: (resource: T) => unknown): unknown {
    try {
      return this.#callHook(validate, slot.value);
    } catch {
      return false;
    }
  }

  /**
   * Calls the factory's validate or reset: in the root context, unless the factory switches there
   * itself (HOOKS_IN_ROOT), which saves a switch per call on an adapter's per-statement path.
   */
  #callHook(hook: (resource: T) => unknown, value: T): unknown {
    return this.#hooksInRoot ? hook.call(this.#factory, value) : runInRoot(() => hook.call(this.#factory, value));
  }

  /**
   * Acts on a validate's answer about `slot` (settling its promise first, counted as a validation
   * under way): a no destroys it; a yes gives it to `forWaiter`, the oldest waiter it was checked
   * for, or, when that acquire is gone (`undefined`), to whoever is next, or to the idle set.
   */
  #judge(slot: Slot<T>, answer: unknown, forWaiter: Waiter<Lease<T>> | undefined): void {
    this.#validating++;
    if (forWaiter !== undefined) this.#validatingFor.push(forWaiter);
    const verdict = (ok: unknown) => {
      this.#validating--;
      if (forWaiter !== undefined) this.#validatingFor.splice(this.#validatingFor.indexOf(forWaiter), 1);
      if (works(ok) && !slot.evicted) {
        if (forWaiter === undefined) this.#reoffer(slot);
        else if (this.#state === OPEN) this.#handOut(slot, performance.now());
        else this.#toIdle(slot);
      } else {
        this.#lastValidateFailure = performance.now();
        this.#destroy(slot, slot.evicted ? 'evicted' : 'validate-failed');
      }
      this.#reconcile();
    };
    if (!isPromiseLike(answer)) verdict(answer);
    else
      this.#bounded(
        answer,
        'validate',
        (ok) => verdict(ok),
        () => verdict(false),
      );
  }

  /**
   * Settles a hook's promise through `ok` or `fail`, or through `fail` once `acquireTimeoutMs`
   * passed: a validate or reset that hangs (a half-open socket) must not hold its room in the pool
   * for good. The resource is then destroyed, which usually ends the hung call too.
   */
  #bounded(pending: PromiseLike<unknown>, hook: string, ok: (value: unknown) => void, fail: (error: unknown) => void): Promise<void> {
    const o = this.#options;
    return within(pending, o.acquireTimeoutMs).then(
      (value) => (value === LATE ? fail(new Error(poolMessages.hookHung(this.name, hook, o.acquireTimeoutMs, o.kind))) : ok(value)),
      fail,
    );
  }

  /** Gives `slot` to the oldest waiter, as a lease of the waiter's scope; with no waiter, back to the idle set. */
  #handOut(slot: Slot<T>, now: number): void {
    const waiter = this.#queue.shift();
    if (waiter === undefined) {
      this.#toIdle(slot);
      return;
    }
    waiter.resolve(this.#lend(slot, waiter.scope, waiter.raw, waiter.t0, now));
  }

  /** Makes the lease: `slot` is now borrowed by `scope`'s task. */
  #lend(slot: Slot<T>, scope: ScopeNode | undefined, raw: RawSite | undefined, t0: number, now: number): Lease<T> {
    slot.uses++;
    this.#borrowed++;
    const o = this.#options;
    const state = new LeaseState<T>({
      value: slot.value,
      release: slot.release,
      destroy: slot.destroy,
      kind: o.kind,
      label: this.name,
      raw,
      t0: now,
      owner: scope,
      pool: this.#ref,
    });
    slot.lease = state;
    push(this.#leased, slot);
    if (acquireChannel.hasSubscribers) acquireChannel.publish({ pool: this.name, waitMs: now - t0 });
    return openLease(state);
  }

  /**
   * The fast path's slot: an idle resource generic-pool handed over at once. Lend it, unless the
   * pool or the scope ended meanwhile (it goes back), or it must be checked first: then this
   * acquire joins the queue at its head, as the oldest waiter, and takes the common path.
   */
  #takeIdle(
    slot: Slot<T>,
    scope: ScopeNode | undefined,
    raw: RawSite | undefined,
    t0: number,
    timeoutMs: number,
    ownTimeout: boolean,
    signal: AbortSignal | undefined,
  ): Lease<T> | Promise<Lease<T>> {
    this.#borrowed--;
    const refusal = this.#refusalOf(scope, signal);
    if (refusal !== undefined) {
      // Someone may have queued behind this acquire, finding no room: the slot is theirs.
      this.#reoffer(slot);
      throw refusal;
    }
    const validate = this.#factory.validate;
    // "Now" is the acquire's start, a microtask ago: reading the clock again (about 0.1 µs) would change no decision.
    const usable = slot.failure === undefined && !slot.evicted && slot.expiresAt > t0;
    if (usable && (validate === undefined || t0 - slot.idleSince < this.#options.validateAfterIdleMs))
      return this.#lend(slot, scope, raw, t0, t0);
    // Not lent at once: this acquire joins the queue at its head, as the oldest waiter, then `next` runs.
    const queued = (next: () => void) =>
      new Promise<Lease<T>>((resolve, reject) => {
        const deadline = timeoutMs > 0 ? t0 + timeoutMs : Infinity;
        this.#queue.push(new Waiter(this.#queue.owner, scope, raw, t0, deadline, ownTimeout, signal, resolve, reject), true);
        next();
      });
    if (!usable || validate === undefined) return queued(() => this.#reoffer(slot)); // (validate is undefined only when unusable)
    // Due for a check: a validate that answers at once that it works (mysql's, a state flag) lends
    // it now; only a promise or a no takes the queue, as the oldest waiter.
    const answer = this.#check(slot, validate);
    // A validate may itself abort the acquire's signal, close the pool or end the scope: this
    // acquire was not queued for any of them to refuse, so it is refused here. Its answer still
    // decides what becomes of the resource.
    const late = this.#refusalOf(scope, signal);
    if (late !== undefined) {
      this.#judge(slot, answer, undefined);
      throw late;
    }
    if (!isPromiseLike(answer) && works(answer) && !slot.evicted) return this.#lend(slot, scope, raw, t0, t0);
    return queued(() => {
      this.#judge(slot, answer, this.#queue.head as Waiter<Lease<T>>);
      this.#reconcile();
    });
  }

  /**
   * A slot taken from the idle set that this acquire will not have goes on as if generic-pool had
   * just handed it to one of our requests: to the oldest waiter (checked if it must be), or back.
   */
  #reoffer(slot: Slot<T>): void {
    this.#requested++;
    this.#onSlot(slot);
  }

  /** Why this acquire must fail now, if it must: its signal aborted, or as `#refusal`. */
  #refusalOf(scope: ScopeNode | undefined, signal: AbortSignal | undefined): unknown {
    return signal?.aborted === true ? (signal.reason as unknown) : this.#refusal(scope);
  }

  /** Why an acquire by `scope`'s task must fail now, if it must: the pool closed, or the task ended. */
  #refusal(scope: ScopeNode | undefined): unknown {
    if (this.#state !== OPEN) return new PoolClosedError(poolMessages.closed(this.name), this.name);
    if (scope === undefined) return undefined;
    if (scope.state !== 'open') return new ScopeClosedError(poolMessages.refusedInScope(this.name, this.#options.kind, scope, scope.state));
    return scope.cancelReason();
  }

  /** The waiter's deadline passed. */
  #expire(waiter: Waiter<Lease<T>>): void {
    if (!this.#queue.remove(waiter)) return;
    const waitMs = performance.now() - waiter.t0;
    const stats = this.stats();
    if (timeoutChannel.hasSubscribers) timeoutChannel.publish({ pool: this.name, waitMs, stats });
    const failure = this.#lastCreateError;
    const createFailed = failure !== undefined && failure.at >= waiter.t0;
    const o = this.#options;
    const now = performance.now();
    const message = poolMessages.timedOut({
      pool: this.name,
      kind: o.kind,
      max: o.max,
      waitMs,
      ownTimeout: waiter.ownTimeout,
      borrowed: stats.borrowed,
      available: stats.available,
      pending: stats.pending,
      destroying: stats.destroying,
      destroyTimeoutMs: o.destroyTimeoutMs,
      createFailedMsAgo: createFailed ? now - failure.at : undefined,
      validateFailedMsAgo: this.#lastValidateFailure >= waiter.t0 ? now - this.#lastValidateFailure : undefined,
      longestHeld: this.#longestHeld(3),
    });
    waiter.reject(new PoolTimeoutError(message, this.name, waitMs, createFailed ? { cause: failure.error } : undefined));
    this.#reconcile();
  }

  /** The `count` longest-held leases, for a timeout message: who to look at. */
  #longestHeld(count: number): LeakedResource[] {
    const now = performance.now();
    const held: LeakedResource[] = [];
    for (let slot = this.#leased.tail as Slot<T> | undefined; slot !== undefined; slot = slot.prev as Slot<T> | undefined) {
      if (slot.lease !== undefined) held.push(slot.lease.leaked(now));
    }
    return held.sort((a, b) => b.heldMs - a.heldMs).slice(0, count);
  }

  /** The waiter's signal aborted, or its scope was cancelled or closed. */
  #giveUp(waiter: Waiter<Lease<T>>, reason: unknown): void {
    if (!this.#queue.remove(waiter)) return;
    waiter.reject(reason);
    this.#reconcile();
  }

  // --- creating ------------------------------------------------------------------------------------

  /** generic-pool's create: never rejects while our requests wait (generic-pool would retry at once, in a loop). */
  #create(): Promise<Slot<T>> {
    const t0 = performance.now();
    this.#creating++;
    let made: unknown;
    try {
      made = runInRoot(() => this.#factory.create());
    } catch (error) {
      made = Promise.reject(error);
    }
    return Promise.resolve(made).then(
      (value) => {
        const now = performance.now();
        this.#creating--;
        // generic-pool puts it in its idle set a few ticks from now and tells nobody if no request
        // waits: decide again then (a held-back waiter may take it; min may need another).
        runInRoot(() => setImmediate(this.#reconcileLater));
        this.#lastCreateError = undefined;
        if (createChannel.hasSubscribers) createChannel.publish({ pool: this.name, durationMs: now - t0 });
        const lifetime = this.#options.maxLifetimeMs;
        return this.#slot(value as T, now, lifetime > 0 ? now + lifetime * (1 - LIFETIME_JITTER * Math.random()) : Infinity, undefined);
      },
      (error: unknown) => {
        const now = performance.now();
        this.#creating--;
        this.#lastCreateError = { error, at: now };
        if (createChannel.hasSubscribers) createChannel.publish({ pool: this.name, durationMs: now - t0, error });
        const waitedThrough = this.#queue.lastSeq;
        if (this.#engine.pending === 0) {
          // Our request was served by another resource meanwhile: nobody waits for this create in
          // generic-pool's queue, so a rejection is not retried. Waiters that counted on it, and
          // `min`, still need to hear of it.
          runInRoot(() => setImmediate(() => this.#state === OPEN && this.#createFailed(waitedThrough, error)));
          throw error;
        }
        // A request waits in generic-pool's queue: a rejection would make it retry at once, forever.
        // A failed slot travels to the request instead, which ends the wait.
        const slot = this.#slot(undefined as T, now, Infinity, { error, waitedThrough });
        this.#failed.add(slot);
        return slot;
      },
    );
  }

  #slot(value: T, now: number, expiresAt: number, failure: Slot<T>['failure']): Slot<T> {
    const slot: Slot<T> = new Slot<T>(
      value,
      now,
      expiresAt,
      failure,
      () => this.#leaseEnded(slot),
      (_value, reason) => this.#leaseEnded(slot, true, reason),
    );
    if (failure === undefined) this.#slots.set(value, slot);
    return slot;
  }

  /**
   * A create failed while the waiters up to `waitedThrough` (by `Waiter.seq`) were queued: they
   * waited through the attempt, and are held back: no new
   * create for them until something changes. If nothing else can serve them — no resource borrowed
   * to come back, none on its way or being checked, none idle — they fail now with its error.
   * Below `min`, the refill tries again after a backoff. Never a retry at once: that is
   * generic-pool's busy loop (its issue #175).
   */
  #createFailed(waitedThrough: number, error: unknown): void {
    this.#heldBackUntil = Math.max(this.#heldBackUntil, waitedThrough);
    const hopeless = this.#borrowed === 0 && this.#requested === 0 && this.#validating === 0 && this.#idle() === 0;
    if (hopeless) {
      for (let w = this.#queue.head; w !== undefined && w.seq <= waitedThrough;) {
        const after = w.newer as Waiter<Lease<T>> | undefined;
        if (this.#queue.remove(w)) {
          w.reject(new PoolCreateError(poolMessages.createFailed(this.name, this.#options.kind, error), this.name, { cause: error }));
        }
        w = after;
      }
    }
    this.#refillFailures++;
    if (this.#usable() < this.#options.min && this.#refillTimer === undefined) {
      const backoff = Math.min(REFILL_MAX_MS, REFILL_FIRST_MS * 2 ** (this.#refillFailures - 1));
      const delay = Math.round(backoff * (0.8 + 0.4 * Math.random()));
      this.#refillTimer = runInRoot(() =>
        setTimeout(() => {
          this.#refillTimer = undefined;
          this.#retryHeldBack();
          this.#reconcile();
        }, delay),
      );
      this.#refillTimer.unref(); // a pool refilling min must not keep a process alive
    }
    this.#reconcile();
  }

  // --- giving back ---------------------------------------------------------------------------------
  // A lease ends (#leaseEnded); its slot is reused (#reuse: to the oldest waiter, or #toIdle) or
  // discarded (#discard -> #destroy, which generic-pool carries out by calling #teardown).

  /** A lease ended: `release()` (or its scope reclaimed it, or GC), or `destroy()` when `destroying`. */
  #leaseEnded(slot: Slot<T>, destroying = false, reason?: unknown): unknown {
    const state = slot.lease as LeaseState<T>;
    slot.lease = undefined;
    remove(this.#leased, slot);
    if (releaseChannel.hasSubscribers) releaseChannel.publish({ pool: this.name, heldMs: performance.now() - state.t0 });
    if (destroying) return this.#discard(slot, this.#forcing ? 'closed' : 'destroyed', reason);
    if (this.#state !== OPEN) return this.#discard(slot, 'closed');
    if (slot.evicted) return this.#discard(slot, 'evicted');
    const o = this.#options;
    if (o.maxUses > 0 && slot.uses >= o.maxUses) return this.#discard(slot, 'max-uses');
    if (slot.expiresAt !== Infinity && slot.expiresAt <= performance.now()) return this.#discard(slot, 'max-lifetime');
    const reset = this.#factory.reset;
    if (reset === undefined) return this.#reuse(slot);
    let result: unknown;
    try {
      result = this.#callHook(reset, slot.value);
    } catch (error) {
      return this.#discard(slot, 'reset-failed', error);
    }
    if (!isPromiseLike(result)) return this.#reuse(slot);
    // The releaser waits for the reset: the resource is back when its release resolves.
    return this.#bounded(
      result,
      'reset',
      () => this.#reuse(slot),
      (error: unknown) => this.#discard(slot, 'reset-failed', error),
    );
  }

  /** A returned slot is reusable: to the oldest waiter, else to the idle set. */
  #reuse(slot: Slot<T>): void {
    this.#borrowed--;
    if (slot.evicted)
      this.#destroy(slot, 'evicted'); // evicted during its reset
    else if (this.#state !== OPEN || this.#queue.length === 0) this.#toIdle(slot);
    else this.#handOut(slot, performance.now());
    this.#retryHeldBack(); // a resource came back: waiters a failure held back may be served or try again
    this.#reconcile();
  }

  /** A returned slot goes for good. */
  #discard(slot: Slot<T>, reason: PoolDestroyReason, error?: unknown): void {
    this.#borrowed--;
    this.#destroy(slot, reason, error);
    this.#retryHeldBack();
    this.#reconcile();
  }

  /** To the idle set: kept warm (see `#warm`); after close() began, destroyed. */
  #toIdle(slot: Slot<T>): void {
    if (this.#state !== OPEN) {
      this.#destroy(slot, 'closed');
      return;
    }
    slot.idleSince = performance.now();
    if (this.#engine.pending > 0) {
      // One of our requests waits in generic-pool's queue: it must get this slot, or generic-pool
      // creates one for it (room a destroy under way still takes on the server: one over max).
      void this.#engine.release(slot);
      return;
    }
    this.#warm.push(slot);
    if (this.#coolTimer === undefined) this.#coolLater(this.#warmMs);
  }

  #coolLater(ms: number): void {
    this.#coolTimer = runInRoot(() => setTimeout(this.#onCoolTimer, ms));
    this.#coolTimer.unref(); // warm resources must not keep a process alive
  }

  readonly #onCoolTimer = (): void => {
    this.#coolTimer = undefined;
    if (this.#state !== OPEN) return;
    const now = performance.now();
    this.#cool(now - this.#warmMs);
    const oldest = this.#warm[0];
    if (oldest !== undefined && this.#coolTimer === undefined) this.#coolLater(Math.max(1, oldest.idleSince + this.#warmMs - now));
  };

  /** Gives the warm slots idle since `idleBefore` or earlier back to generic-pool's idle set, where its evictor judges them. */
  #cool(idleBefore: number): void {
    const warm = this.#warm;
    let n = 0;
    while (n < warm.length && (warm[n] as Slot<T>).idleSince <= idleBefore) n++;
    for (const slot of warm.splice(0, n)) void this.#engine.release(slot);
  }

  /** Destroys a slot generic-pool has lent us. */
  #destroy(slot: Slot<T>, reason: PoolDestroyReason, error?: unknown): void {
    slot.destroyReason = reason;
    slot.destroyCause = error;
    void this.#engine.destroy(slot);
  }

  /**
   * generic-pool's destroy: the factory's, outside any scope; never rejects (failures are events).
   * The resource counts as `destroying`, against `max`, until the factory's destroy settles or
   * `destroyTimeoutMs` passes (then it is reported, and its room given back).
   */
  #teardown(slot: Slot<T>): Promise<void> {
    if (slot.failure !== undefined) {
      this.#failed.delete(slot);
      return RESOLVED;
    }
    if (slot.destroyed) return RESOLVED;
    slot.destroyed = true;
    if (this.#slots.get(slot.value) === slot) this.#slots.delete(slot.value);
    const reason = slot.destroyReason ?? 'closed';
    const cause = slot.destroyCause;
    slot.destroyCause = undefined;
    const t0 = performance.now();
    this.#destroying++;
    let finished = false;
    const settled = (error?: unknown, timedOut = false) => {
      if (finished) return;
      finished = true;
      this.#destroying--;
      if (destroyChannel.hasSubscribers) {
        const event: Record<string, unknown> = { pool: this.name, reason, durationMs: performance.now() - t0 };
        if (cause !== undefined) event['cause'] = cause;
        if (error !== undefined) event['error'] = error;
        if (timedOut) event['timedOut'] = true;
        destroyChannel.publish(event);
      }
    };
    let result: unknown;
    try {
      result = runInRoot(() => this.#factory.destroy(slot.value));
    } catch (error) {
      result = undefined;
      settled(error);
    }
    if (!isPromiseLike(result)) {
      settled();
      // Called from inside generic-pool (its evictor, its destroy): decide next once it is done.
      queueMicrotask(this.#reconcileLater);
      return RESOLVED;
    }
    // Asynchronous: the room it frees is for the next decision, once it is really gone.
    const timeoutMs = this.#options.destroyTimeoutMs;
    // Until then generic-pool counts it against max (see createGenericPool); once gone, the acquires
    // queued in generic-pool may be served.
    const gone = () => {
      if (this.#engine.pending > 0) this.#engine.dispatch();
      this.#reconcile();
    };
    return within(result, timeoutMs).then(
      (value) => {
        if (value === LATE) {
          warnRelease(destroyTimeoutMessage(this.name, this.#options.kind, timeoutMs), 'CUSTODIAN_POOL_DESTROY_TIMEOUT');
          settled(undefined, true);
        } else settled();
        gone();
      },
      (error: unknown) => {
        settled(error ?? new Error('destroy rejected'));
        gone();
      },
    );
  }

  /** generic-pool's evictor: evicted, idle too long (down to `min`), too old, or a leftover failure. */
  #shouldEvict(slot: Slot<T>): boolean {
    if (slot.failure !== undefined) return true;
    if (slot.evicted) {
      slot.destroyReason = 'evicted';
      return true;
    }
    const now = performance.now();
    if (slot.expiresAt <= now) {
      slot.destroyReason = 'max-lifetime';
      return true;
    }
    const idleMs = this.#options.idleTimeoutMs;
    if (idleMs > 0 && now - slot.idleSince >= idleMs && this.#usable() > this.#options.min) {
      slot.destroyReason = 'idle';
      return true;
    }
    return false;
  }

  // --- closing -------------------------------------------------------------------------------------

  async #shutDown(timeoutMs: number, draining: Promise<void>): Promise<void> {
    if (this.#busy()) {
      const drained = new Promise<boolean>((resolve) => (this.#drained = () => resolve(true)));
      if ((await within(drained, timeoutMs)) === LATE) this.#destroyBorrowed(timeoutMs);
      this.#drained = undefined;
    }
    this.#unwatchHeld?.();
    // clear() waits for creates under way, then destroys the idle resources and waits for that.
    if ((await within(this.#engine.clear(), timeoutMs)) === LATE) {
      warnRelease(closeHungMessage(this.name, timeoutMs), 'CUSTODIAN_POOL_CLOSE_HUNG');
    } else if (!this.#busy()) await draining; // once every loan is back, generic-pool stops its evictor
    this.#state = CLOSED;
  }

  #checkDrained(): void {
    if (this.#drained !== undefined && !this.#busy()) this.#drained();
  }

  /** Something is out of the idle set: borrowed, requested, or being validated. */
  #busy(): boolean {
    return this.#borrowed > 0 || this.#requested > 0 || this.#validating > 0;
  }

  /** close() timed out: destroy what is still borrowed, and say who holds it. */
  #destroyBorrowed(timeoutMs: number): void {
    const now = performance.now();
    const held: LeaseState<T>[] = [];
    for (let slot = this.#leased.tail as Slot<T> | undefined; slot !== undefined; slot = slot.prev as Slot<T> | undefined) {
      if (slot.lease !== undefined) held.push(slot.lease);
    }
    const resources = held.map((state) => state.leaked(now));
    const stuck = this.#borrowed - held.length; // returned but still in reset
    const o = this.#options;
    if (held.length === 0 && stuck === 0) return; // only creates or validations were under way: nobody to blame
    const message = poolCloseMessage(this.name, o.kind, this.#borrowed, resources, stuck, timeoutMs);
    deliver({ type: 'pool-close', pool: this.name, timeoutMs, resources, message }, settings.leaks);
    const reason = withoutStack(() => new PoolClosedError(poolMessages.closedWhileBorrowed(this.name, o.kind), this.name));
    this.#forcing = true;
    for (const state of held) {
      if (state.state !== HELD) continue;
      try {
        const result = state.finish(true, reason, leaseMessages.destroyedAtPoolClose(this.name, timeoutMs));
        if (isPromiseLike(result)) result.then(noop, noop);
      } catch {
        // the destroy event already carries the error
      }
    }
    this.#forcing = false;
  }
}

/** Where an adapter's callback acquire (lendAbove) delivers. */
interface Into<T> {
  ok(lease: Lease<T>): void;
  fail(reason: unknown): void;
}

/** An acquire refused before it started: the rejected promise, or `into.fail` a microtask later. */
function refuse<T>(reason: unknown, into: Into<T> | undefined): Promise<Lease<T>> | undefined {
  if (into === undefined) return Promise.reject(reason);
  void RESOLVED.then(() => into.fail(reason));
  return undefined;
}

/** Delivers what `take` gives (a lease, its promise, or a throw) to `into`. */
function settleInto<T>(into: Into<T>, take: () => Lease<T> | Promise<Lease<T>>): void {
  let taken: Lease<T> | Promise<Lease<T>>;
  try {
    taken = take();
  } catch (error) {
    into.fail(error);
    return;
  }
  if (isPromiseLike(taken)) taken.then(into.ok, into.fail);
  else into.ok(taken);
}
