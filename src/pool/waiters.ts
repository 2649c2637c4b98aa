/**
 * The acquires waiting for a resource: a FIFO queue, and the timers that end their waits.
 *
 * Acquires that use the pool's own `acquireTimeoutMs` reach their deadlines in the order they
 * queued, so one timer per queue serves them all, armed for the oldest; it is unref'd while nobody
 * waits instead of being cleared, so a busy pool does not pay a setTimeout per acquire. An acquire
 * with its own `timeout` gets its own timer.
 */
import { Chain, type Linked } from '../registry/chain.js';
import type { Node } from '../registry/list.js';
import type { ScopeNode, ScopeWaiter } from '../scope/scope-node.js';
import type { RawSite } from '../report/sites.js';
import { runInRoot } from '../scope/storage.js';
import { noop } from '../util/promises.js';
import { keepShape } from '../util/shapes.js';

/** What the queue tells the pool. */
export interface WaitOwner<L> {
  /** The waiter's deadline passed. */
  expire(waiter: Waiter<L>): void;
  /** The waiter's signal aborted, or its scope was cancelled or closed. */
  giveUp(waiter: Waiter<L>, reason: unknown): void;
}

/** One acquire waiting for a resource; `L` is what it is resolved with (the lease). */
export class Waiter<L> implements ScopeWaiter {
  // Links in the scope's list of waits.
  prev: Node | undefined = undefined;
  next: Node | undefined = undefined;
  // Links in the pool's queue.
  older: Linked | undefined = undefined;
  newer: Linked | undefined = undefined;
  /** Its place in arrival order (1, 2, ...), given when first queued. */
  seq = 0;
  timer: NodeJS.Timeout | undefined = undefined;

  constructor(
    readonly owner: WaitOwner<L>,
    /** The scope the lease will belong to: the acquirer's, whoever releases the resource. */
    readonly scope: ScopeNode | undefined,
    readonly raw: RawSite | undefined,
    /** performance.now() when the acquire started. */
    readonly t0: number,
    /** performance.now() after which it fails; Infinity for none. */
    readonly deadline: number,
    /** True when the acquire has its own timeout (and timer). */
    readonly ownTimeout: boolean,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (lease: L) => void,
    readonly reject: (reason: unknown) => void,
  ) {}

  scopeEnded(reason: unknown): void {
    this.owner.giveUp(this, reason);
  }

  /** The signal's 'abort' listener (an object listener: no closure per acquire). */
  handleEvent(): void {
    this.owner.giveUp(this, (this.signal as AbortSignal).reason);
  }
}

/** FIFO of waiters with O(1) removal from anywhere (a timed-out or aborted one leaves from the middle). */
export class WaitQueue<L> {
  readonly #waiters = new Chain<Waiter<L>>();
  /** The `seq` of the last waiter queued. */
  lastSeq = 0;
  #timer: NodeJS.Timeout | undefined = undefined;
  #timerDue = Infinity;

  constructor(readonly owner: WaitOwner<L>) {}

  /** The oldest waiter. */
  get head(): Waiter<L> | undefined {
    return this.#waiters.head;
  }

  get length(): number {
    return this.#waiters.size;
  }

  /** True while `waiter` waits here. */
  has(waiter: Waiter<L>): boolean {
    return this.#waiters.has(waiter);
  }

  /**
   * Queues `waiter` at the tail or, with `byAge`, behind every waiter that started before it (an
   * acquire whose fast path fell through joins late but keeps its turn). Starts watching its
   * deadline, signal and scope.
   */
  push(waiter: Waiter<L>, byAge = false): void {
    waiter.seq = ++this.lastSeq;
    let ref = byAge ? this.#waiters.head : undefined;
    while (ref !== undefined && ref.t0 <= waiter.t0) ref = ref.newer as Waiter<L> | undefined;
    if (ref === undefined) this.#waiters.append(waiter);
    else this.#waiters.insertBefore(waiter, ref);
    if (waiter.deadline !== Infinity) {
      // Timers run in the root context: not in the context of whichever request armed them.
      if (waiter.ownTimeout)
        waiter.timer = runInRoot(() => setTimeout(() => this.owner.expire(waiter), Math.max(1, waiter.deadline - waiter.t0)));
      else this.#arm(waiter.deadline);
    }
    if (waiter.signal !== undefined) waiter.signal.addEventListener('abort', waiter, { once: true });
    if (waiter.scope !== undefined) waiter.scope.addWaiter(waiter);
  }

  /** Takes the oldest waiter out (or none), and stops watching it. */
  shift(): Waiter<L> | undefined {
    const waiter = this.#waiters.head;
    if (waiter !== undefined) this.remove(waiter);
    return waiter;
  }

  /** Takes `waiter` out wherever it is, and stops watching it. Returns false if it was not queued. */
  remove(waiter: Waiter<L>): boolean {
    if (!this.#waiters.unlink(waiter)) return false;
    if (this.#waiters.size === 0 && this.#timer !== undefined) this.#timer.unref();
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    if (waiter.signal !== undefined) waiter.signal.removeEventListener('abort', waiter);
    if (waiter.scope !== undefined) waiter.scope.removeWaiter(waiter);
    return true;
  }

  /** Stops the shared timer (the pool closed). */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDue = Infinity;
  }

  #arm(due: number): void {
    const timer = this.#timer;
    if (timer !== undefined && this.#timerDue <= due) {
      timer.ref(); // armed early enough already; it may have been unref'd while the queue was empty
      return;
    }
    if (timer !== undefined) clearTimeout(timer);
    this.#timerDue = due;
    this.#timer = runInRoot(() => setTimeout(this.#fire, Math.max(1, Math.ceil(due - performance.now()))));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#timerDue = Infinity;
    const now = performance.now();
    for (let waiter = this.head; waiter !== undefined;) {
      const after = waiter.newer as Waiter<L> | undefined;
      if (!waiter.ownTimeout && waiter.deadline !== Infinity) {
        // Shared-timer waiters queued in deadline order: the first one not due ends the pass.
        if (waiter.deadline > now) {
          this.#arm(waiter.deadline);
          return;
        }
        this.owner.expire(waiter);
      }
      waiter = after;
    }
  };
}

// The shape of a waiter, kept for the process (see util/shapes.ts): most acquires never wait.
keepShape(
  new Waiter<unknown>({ expire: noop, giveUp: noop }, undefined, undefined, performance.now(), Infinity, false, undefined, noop, noop),
);
