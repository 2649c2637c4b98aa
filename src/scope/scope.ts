/**
 * Scope: owns the resources of one logical task and gives them all back when the task ends.
 *
 * Resources sit in an intrusive list (newest at the tail) and are released from the tail: LIFO.
 * Child scopes close before the parent's own resources. Every release runs even when an earlier
 * one throws; the errors are folded the way `await using` folds them. A release that hangs is
 * abandoned after `disposeTimeoutMs` and reported. Closing is synchronous when every release is:
 * no promise is created for work that has none.
 */
import { channel } from 'node:diagnostics_channel';
import { channels } from '../report/channels.js';
import { policyRule, settings, type LeakPolicy } from '../config/config.js';
import { attachReleaseErrors, foldErrors, LeakError, ScopeClosedError, ScopeTimeoutError, withoutStack } from '../errors.js';
import { createLease, type Lease, type LeaseState, type Owner, type TrackOptions } from '../lease/lease.js';
import { push, remove, type List, type Node } from '../registry/list.js';
import { currentOrigin, describes } from '../report/origin.js';
import { Finalizer } from './cleanup.js';
import { addScope, coarseNow, removeScope, type WatchedEntry, type WatchedScope } from '../registry/registry.js';
import type { Linked } from '../registry/chain.js';
import { unwatchSignal, watchSignal } from './signals.js';
import {
  deliver,
  errorText,
  plural,
  reportTitle,
  resourceLines,
  resourceName,
  scopeTitle,
  siteText,
  warnReleaseErrors,
  type LeakedResource,
  type ScopeInfo,
} from '../report/report.js';
import { isPromiseLike, noop, RESOLVED } from '../util/promises.js';
import { boundaryOf, captureSite, formatSite, type RawSite } from '../lease/sites.js';
import { storage } from './storage.js';
import { describe, rules, validateOptions } from '../config/validate.js';

/** Options of `withScope`, `openScope` and `scope.fork`. */
export interface ScopeOptions {
  /** Shown in reports: a route, a queue name, a job name. */
  name?: string | undefined;
  /** An outer signal: when it aborts, the scope is cancelled with its reason. */
  signal?: AbortSignal | undefined;
  /** Milliseconds after which the scope is cancelled with a `ScopeTimeoutError`. */
  timeout?: number | undefined;
  /** Leak policy for this scope and its children, overriding `configure({ leaks })`. */
  leaks?: LeakPolicy | undefined;
  /** How long closing waits for one release, overriding `configure({ disposeTimeoutMs })`. 0 waits forever. */
  disposeTimeoutMs?: number | undefined;
  /**
   * Your function that wraps this call: reports name the line that called it as where the scope
   * was opened. It must be on the stack: open the scope from it synchronously.
   */
  boundary?: ((...args: never[]) => unknown) | undefined;
}

/**
 * @internal Something waiting on behalf of a scope's task (a pool acquire). When the scope is
 * cancelled or starts closing, the wait is told at once, so it can give up instead of handing a
 * resource to a task that is over.
 */
export interface ScopeWaiter extends Node {
  scopeEnded(reason: unknown): void;
}

/** The state of a scope. */
export type ScopeState = 'open' | 'closing' | 'closed';

const OPEN = 0;
const CLOSING = 1;
const CLOSED = 2;
const STATE_NAMES: readonly ScopeState[] = ['open', 'closing', 'closed'];

const optionRules = {
  name: rules.string,
  signal: rules.signal,
  timeout: rules.positiveMs,
  leaks: policyRule,
  disposeTimeoutMs: rules.ms,
  boundary: rules.function,
};

const openChannel = channel(channels.scopeOpen);
const closeChannel = channel(channels.scopeClose);

let nextId = 1;

/**
 * Owns the resources of one task. Get one from `withScope`, `openScope` or `scope.fork`.
 *
 * Everything given to a scope (`use`, `adopt`, `defer`, `track`) is released when it closes, in
 * reverse order of acquisition, each one even when another throws. Leases the code released itself
 * are skipped; those it did not are reclaimed and reported as leaks (or, when the task was
 * cancelled while still running, destroyed and reported as such).
 */
export class Scope implements AsyncDisposable {
  /** A number unique in this process, shown in reports as `#id`. */
  readonly id: number;
  /** The name given in the options, if any. */
  readonly name: string | undefined;
  /** The scope this one was opened in, if any. */
  readonly parent: Scope | undefined;

  /** @internal Sibling links in the parent's list of open children. */
  prev: WatchedScope | undefined = undefined;
  /** @internal */
  next: WatchedScope | undefined = undefined;
  /** @internal Links in the registry's chain of every open scope. */
  older: Linked | undefined = undefined;
  /** @internal */
  newer: Linked | undefined = undefined;
  /** @internal The newest open child. */
  tail: WatchedScope | undefined = undefined;
  /** @internal Owned resources, newest at the tail. */
  entries: List<WatchedEntry> = { tail: undefined };
  /** @internal performance.now() at open, within one sweep period (see registry.coarseNow). */
  readonly t0: number;
  /** @internal Where it was opened (dropped at close unless formatted: V8 keeps the frames' objects alive). */
  raw: RawSite | undefined;
  /** @internal When the sweep first saw it open; see registry.checkStale. */
  // NaN, not 0: a double from the start. A field that starts as a small integer and later gets a
  // double changes representation, and V8 then migrates every scope object (seconds for 100,000).
  seenAt = Number.NaN;
  /** @internal */
  reportedStale = false;
  /** @internal Acquires waiting on behalf of this scope's task (see ScopeWaiter), allocated on first use. */
  waiters: List<ScopeWaiter> | undefined = undefined;
  /** @internal Who opened it (a test, in test mode); see origin.ts. */
  readonly origin: object | undefined = currentOrigin();

  #state = OPEN;
  #closing: Promise<void> | undefined = undefined;
  #controller: AbortController | undefined = undefined;
  #aborted = false;
  #abortReason: unknown = undefined;
  readonly #policy: LeakPolicy | undefined;
  readonly #disposeTimeoutMs: number | undefined;
  #timer: NodeJS.Timeout | undefined = undefined;
  #outer: AbortSignal | undefined = undefined;
  /** Resolves re-entrant close() calls made while a synchronous close is under way. */
  #onClosed: (() => void) | undefined = undefined;
  /** Rejects the pending `withScope` wait when the scope is cancelled while its body runs. */
  #interrupt: ((reason: unknown) => void) | undefined = undefined;
  /**
   * True when a timeout or outer signal (here or on an ancestor) can cancel the task: then
   * `withScope` races the body so that a cancellation stops the wait at once (see runTask).
   */
  readonly #cancellable: boolean;
  #bodyRunning = false;
  /** Set when closing starts while a cancelled body still runs: what it holds is destroyed, not released. */
  #destroyHeld = false;
  // Close bookkeeping, allocated only when needed.
  #errors: unknown[] | undefined = undefined;
  #leaked: LeakedResource[] | undefined = undefined;
  #failed = false;
  #bodyError: unknown = undefined;
  // The async release being waited for (see #wait).
  #deadline: NodeJS.Timeout | undefined = undefined;
  #waitingFor: WatchedEntry | undefined = undefined;
  #waitStarted = 0;
  #resume: (() => void) | undefined = undefined;

  /** @internal Use `withScope`, `openScope` or `scope.fork`. */
  constructor(options: ScopeOptions | undefined, parent: Scope | undefined, raw: RawSite | undefined) {
    this.id = nextId++;
    this.name = options?.name;
    this.parent = parent;
    this.raw = raw;
    addScope(this); // first: it refreshes the coarse clock when the sweep was idle
    // Exact open times only for those who measure scopes (diagnostics channel subscribers).
    this.t0 = openChannel.hasSubscribers || closeChannel.hasSubscribers ? performance.now() : coarseNow();
    this.#policy = options?.leaks ?? (parent === undefined ? undefined : parent.#policy);
    this.#disposeTimeoutMs = options?.disposeTimeoutMs ?? (parent === undefined ? undefined : parent.#disposeTimeoutMs);
    this.#cancellable = options?.timeout !== undefined || options?.signal !== undefined || (parent !== undefined && parent.#cancellable);
    if (parent !== undefined) push(parent, this);
    if (options !== undefined) {
      const { timeout, signal } = options;
      if (timeout !== undefined) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.cancel(withoutStack(() => new ScopeTimeoutError(`${scopeTitle(this)} timed out after ${timeout} ms`, timeout)));
        }, timeout);
      }
      if (signal !== undefined) {
        if (signal.aborted) this.cancel(signal.reason);
        else {
          this.#outer = signal;
          watchSignal(signal, this);
        }
      }
    }
    // Opened under a cancelled scope (a plain one stays open until its body settles): start
    // cancelled. After the options, so that cancel() also disarms the timer and the listener.
    if (parent !== undefined && parent.#aborted) this.cancel(parent.#abortReason);
    if (openChannel.hasSubscribers) openChannel.publish({ scope: this });
  }

  /** `open` until `close()` starts, `closing` while it releases, then `closed`. */
  get state(): ScopeState {
    return STATE_NAMES[this.#state] as ScopeState;
  }

  /**
   * Aborted when the scope is cancelled (`cancel()`, its `timeout`, its outer `signal`, its parent
   * being cancelled) or closes. Pass it to whatever the task awaits so that the work stops too.
   */
  get signal(): AbortSignal {
    let controller = this.#controller;
    if (controller === undefined) {
      controller = this.#controller = new AbortController();
      if (this.#aborted) controller.abort(this.#abortReason);
      else if (this.#state !== OPEN) controller.abort(this.#closedReason());
    }
    return controller.signal;
  }

  /** Where the scope was opened (`src/server.ts:12:3`); `undefined` when not recorded, or after close unless formatted before. */
  get site(): string | undefined {
    return formatSite(this.raw);
  }

  /** @internal The scope as reports show it. */
  info(): ScopeInfo {
    return describes({ id: this.id, name: this.name, site: formatSite(this.raw) }, this);
  }

  /**
   * Cancels the task: aborts `signal` (and the children's) with `reason`, and the task's
   * `withScope` rejects with `reason`. If the scope has a `timeout` or `signal` (its own or an
   * ancestor's), `withScope` stops waiting at once and closes the scope; leases the still-running
   * body holds are then destroyed rather than released, since their state is unknown. Otherwise it
   * answers when the body settles.
   */
  cancel(reason?: unknown): void {
    if (this.#aborted || this.#state === CLOSED) return;
    const abortReason =
      reason === undefined ? withoutStack(() => new DOMException(`${scopeTitle(this)} was cancelled`, 'AbortError')) : reason;
    // The scope and its open descendants not cancelled yet (a cancelled one's are cancelled
    // already), parents first. Collected first and worked on in flat loops: a tree 30,000 deep
    // must not take 30,000 frames of stack.
    const tree = subtree(this, (scope) => !scope.#aborted && scope.#state !== CLOSED);
    for (const scope of tree) {
      scope.#aborted = true;
      scope.#abortReason = abortReason;
      scope.#stopWatching();
    }
    // Waits first, the children's too: an abort listener that releases a pooled lease must not hand
    // it to this very task, nor to one of its children about to be cancelled.
    for (const scope of tree) if (scope.waiters?.tail !== undefined) scope.#endWaits(abortReason);
    for (const scope of tree) scope.#controller?.abort(abortReason);
    // The tasks' answers, children before parents: a cancellable task's scope closes when answered,
    // and its children are closed (or closing) by then.
    for (let i = tree.length - 1; i >= 0; i--) {
      const scope = tree[i] as Scope;
      const interrupt = scope.#interrupt;
      if (interrupt === undefined) continue;
      scope.#interrupt = undefined;
      // The task's releases run now: in its parent's context, not in that of whoever cancelled it
      // (a request aborting a shared signal must not own another request's cleanups).
      storage.run(scope.parent as Scope, interrupt, abortReason);
    }
  }

  /** Runs `fn` with this scope as the current scope. The scope stays open. */
  run<R>(fn: (scope: Scope) => R): R {
    if (typeof fn !== 'function') throw new TypeError(`scope.run(): fn must be a function, got ${describe(fn)}`);
    if (this.#state !== OPEN) throw this.#closedError('run a function in', false);
    return storage.run(this, fn, this);
  }

  /** Opens a child scope. It closes (at the latest) before this scope's own resources are released. */
  fork(options?: ScopeOptions): Scope {
    return createScope('scope.fork()', options, this, Scope.prototype.fork);
  }

  /**
   * Makes the scope own a `Disposable` or `AsyncDisposable` (anything `using` accepts): it is
   * disposed when the scope closes. Returns it. `null` and `undefined` pass through, as with `using`.
   */
  use<T extends Disposable | AsyncDisposable | null | undefined>(value: T): T {
    if (value === null || value === undefined) return value;
    const v = value as Partial<Disposable & AsyncDisposable>;
    const asyncDispose = v[Symbol.asyncDispose];
    const dispose = asyncDispose ?? v[Symbol.dispose];
    if (typeof dispose !== 'function') {
      throw new TypeError(
        `scope.use(): the value must have a [Symbol.asyncDispose] or [Symbol.dispose] method, got ${describe(value)}; for other values use scope.adopt(value, release)`,
      );
    }
    const kind = (value as object).constructor?.name || 'disposable';
    this.#add(
      new Finalizer(dispose as (this: unknown) => unknown, value, undefined, kind, undefined, typeof asyncDispose !== 'function'),
      'use',
    );
    return value;
  }

  /** Makes the scope own `value`: `release(value)` runs when the scope closes. Returns `value`. */
  adopt<T>(value: T, release: (value: T) => unknown): T {
    if (typeof release !== 'function') {
      throw new TypeError(`scope.adopt(): release must be a function that gives the value back, got ${describe(release)}`);
    }
    this.#add(new Finalizer(release as (arg: unknown) => unknown, undefined, value, 'adopted value', release.name || undefined), 'adopt');
    return value;
  }

  /** Runs `fn` when the scope closes (in LIFO order with everything else it owns). */
  defer(fn: () => unknown): void {
    if (typeof fn !== 'function') throw new TypeError(`scope.defer(): fn must be a function, got ${describe(fn)}`);
    this.#add(new Finalizer(fn, undefined, undefined, 'deferred cleanup', fn.name || undefined), 'defer');
  }

  /**
   * Tracks `value` as a lease the code is expected to give back with `lease.release()` (or
   * `await using`). If the code does not, the scope reclaims it when it closes and reports a leak
   * with the line that acquired it.
   */
  track<T>(value: T, options: TrackOptions<T>): Lease<T> {
    return this.trackAt('scope.track()', value, options, Scope.prototype.track);
  }

  /** @internal `track`, with the site captured above `boundary` (the public function the user called). */
  trackAt<T>(where: string, value: T, options: TrackOptions<T>, boundary: (...args: never[]) => unknown): Lease<T> {
    if (this.#state !== OPEN) {
      if (typeof options?.release === 'function')
        releaseNow(() => options.release(value), resourceName({ kind: options.kind ?? 'resource', label: options.label }));
      throw this.#closedError(`track ${options?.kind ?? 'a resource'} in`);
    }
    return createLease(where, value, options, this, captureSite(boundaryOf(options, boundary)));
  }

  /**
   * @internal Why this task may acquire nothing more: the cancellation reason, or `undefined`
   * while the scope is open and not cancelled. (A closing or closed scope: check `state`.)
   */
  cancelReason(): unknown {
    return this.#aborted ? this.#abortReason : undefined;
  }

  /** @internal Registers a wait made on behalf of this scope's task; `scopeEnded` is called on cancel or close. */
  addWaiter(waiter: ScopeWaiter): void {
    push((this.waiters ??= { tail: undefined }), waiter);
  }

  /** @internal The wait is over (served, timed out, aborted). */
  removeWaiter(waiter: ScopeWaiter): void {
    if (this.waiters !== undefined) remove(this.waiters, waiter);
  }

  /**
   * Ends the waits of this scope and of its open descendants (`reason`, or each one's closed
   * reason). Walks the tree only when this scope has children.
   */
  #endAllWaits(reason: unknown): void {
    if (this.tail === undefined) {
      if (this.waiters?.tail !== undefined) this.#endWaits(reason ?? this.#closedReason());
      return;
    }
    for (const scope of subtree(this, (s) => s === this || s.#state === OPEN)) {
      if (scope.waiters?.tail !== undefined)
        scope.#endWaits(reason ?? (scope === this ? this.#closedReason() : (scope.#abortReason ?? scope.#closedReason())));
    }
  }

  /** Tells every waiter the task is over, newest first; each one unlinks itself or is unlinked here. */
  #endWaits(reason: unknown): void {
    const list = this.waiters as List<ScopeWaiter>;
    for (let waiter = list.tail; waiter !== undefined; waiter = list.tail) {
      remove(list, waiter);
      waiter.scopeEnded(reason);
    }
  }

  /** @internal The leak policy for this scope: its own, else inherited, else the global one. */
  leakPolicy(): LeakPolicy {
    return this.#policy ?? settings.leaks;
  }

  /** @internal A lease was acquired into this scope. */
  attach(entry: WatchedEntry): void {
    push(this.entries, entry);
  }

  /** @internal A lease of this scope was released by its holder: forget it. */
  detach(entry: WatchedEntry): void {
    remove(this.entries, entry);
  }

  /**
   * Closes the scope: cancels and closes its open children, then releases everything it owns,
   * newest first. Resolves when all is released; rejects with the release errors (folded like
   * `await using` does) or, under the `throw` policy, a `LeakError`. Calling it again is harmless.
   * Called from outside while the scope's `withScope` task still runs, it cancels the task first
   * (a `ScopeClosedError` reason): what the task holds is then destroyed, not released.
   */
  close(): Promise<void> {
    if (this.#bodyRunning && this.#state === OPEN && !this.#isCurrent()) {
      // Closed from outside while its task runs: that is a cancellation (as when a parent closes),
      // so the task is answered now and what it holds is destroyed, not handed back in use.
      this.cancel(withoutStack(() => new ScopeClosedError(`${scopeTitle(this)} was closed while its task was still running`)));
    }
    try {
      const closing = this.#close(false, undefined);
      return closing ?? RESOLVED;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** True when the code running now is this scope's own task (or one of its children's). */
  #isCurrent(): boolean {
    for (let scope = storage.getStore(); scope !== undefined; scope = scope.parent) if (scope === this) return true;
    return false;
  }

  /** `await using` support: same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * @internal Used by `withScope`: runs `fn` as this scope's task, closes the scope when the task
   * settles, and returns the caller's promise. The body's error always stays primary.
   *
   * On Node 20 every promise pays for the AsyncLocalStorage hooks, so the common case derives the
   * result from the body's own promise (one `then`). Only a scope that can be cancelled from
   * outside (a `timeout` or `signal` on it or an ancestor) pays for a second promise, which lets a
   * cancellation stop the wait even when the body ignores the signal.
   */
  runTask<R>(fn: (scope: Scope) => R): Promise<Awaited<R>> {
    // Cancelled before it started (an outer signal already aborted): do not start the task at all.
    if (this.#aborted) return this.#settle<R>(true, this.#abortReason);
    let result: R;
    try {
      result = storage.run(this, fn, this);
    } catch (error) {
      return this.#settle<R>(true, this.#aborted ? this.#abortReason : error);
    }
    if (!isPromiseLike(result)) return this.#aborted ? this.#settle<R>(true, this.#abortReason) : this.#settle<R>(false, result);
    this.#bodyRunning = true;
    if (!this.#cancellable) {
      // Cancelled while the body ran (scope.cancel(), or its parent closed first): the task's
      // outcome no longer counts, and the cancellation reason is the answer, as on the other path.
      return Promise.resolve(result).then(
        (value) => {
          this.#bodyRunning = false;
          return (this.#aborted ? this.#after(true, this.#abortReason) : this.#after(false, value)) as Awaited<R>;
        },
        (error: unknown) => {
          this.#bodyRunning = false;
          return this.#after(true, this.#aborted ? this.#abortReason : error) as Awaited<R>;
        },
      );
    }
    return new Promise<Awaited<R>>((resolve, reject) => {
      let answered = false;
      const answer = (failed: boolean, outcome: unknown) => {
        if (answered) return; // the body settling after a cancellation must not answer twice
        answered = true;
        try {
          resolve(this.#after(failed, outcome) as Awaited<R>);
        } catch (error) {
          reject(error);
        }
      };
      this.#interrupt = (reason) => answer(true, reason);
      // Promise.resolve: a thenable whose then() throws becomes a rejection, not a scope left open.
      Promise.resolve(result).then(
        (value) => {
          this.#bodyRunning = false;
          if (this.#interrupt === undefined) return; // cancelled earlier: the caller was already answered
          this.#interrupt = undefined;
          answer(false, value);
        },
        (error: unknown) => {
          this.#bodyRunning = false;
          if (this.#interrupt === undefined) return;
          this.#interrupt = undefined;
          answer(true, error);
        },
      );
      // The body may have cancelled its own scope before its first await.
      if (this.#aborted) {
        this.#interrupt = undefined;
        answer(true, this.#abortReason);
      }
    });
  }

  /** `#after` as a promise, for tasks that ended synchronously. */
  #settle<R>(failed: boolean, outcome: unknown): Promise<Awaited<R>> {
    try {
      return Promise.resolve(this.#after(failed, outcome) as Awaited<R>);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Closes after the task ended. Returns the body's value (or a promise of it when a release was
   * async) or throws: the body's error when it failed, else the release errors.
   */
  #after(failed: boolean, outcome: unknown): unknown {
    const closing = this.#close(failed, failed ? outcome : undefined);
    if (closing === undefined) {
      if (failed) throw outcome;
      return outcome;
    }
    return closing.then(() => {
      if (failed) throw outcome;
      return outcome;
    });
  }

  #close(failed: boolean, bodyError: unknown): void | Promise<void> {
    if (this.#state !== OPEN) {
      // Called again while a synchronous close is still on the stack (from one of its releases):
      // "done" would be a lie, so hand out a promise that #finish settles.
      if (this.#closing === undefined && this.#state === CLOSING)
        this.#closing = new Promise<void>((resolve) => (this.#onClosed = resolve));
      return this.#closing;
    }
    this.#state = CLOSING;
    // Decided once: the body may settle while an earlier release is awaited, but what it held was
    // held by a task that was cut off, and stays suspect for the rest of this close.
    // Only a cancelled task's holdings are suspect: a body that closes its own scope knows what it holds.
    this.#destroyHeld = this.#bodyRunning && this.#aborted;
    this.#failed = failed;
    this.#bodyError = bodyError;
    this.#stopWatching();
    this.#endAllWaits(this.#aborted ? this.#abortReason : undefined);
    if (this.#controller !== undefined && !this.#aborted) this.#controller.abort(this.#closedReason());
    const result = this.#drain();
    if (result !== undefined) this.#closing = result.then(noop, noop);
    return result;
  }

  #stopWatching(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#outer !== undefined) {
      unwatchSignal(this.#outer, this);
      this.#outer = undefined;
    }
  }

  /**
   * Releases children, then entries, newest first; continues asynchronously only when a release is
   * async. An open child was left running or never closed: it is cancelled, and its subtree closes
   * from the deepest scope up, each close starting only when its scope has no open child left, so
   * that no close recurses into another (a chain 30,000 deep is closed in a loop).
   */
  #drain(from: Scope = this): void | Promise<void> {
    let node = from;
    for (;;) {
      const child = node.#liveChild();
      if (child !== undefined && child.#state === OPEN) {
        if (!child.#aborted) {
          const parent = node;
          child.cancel(
            withoutStack(() => new ScopeClosedError(`${scopeTitle(parent)} closed while its child ${scopeTitle(child)} was still open`)),
          );
        }
        if (child.#state === OPEN) node = child; // down: close its children first
        continue; // cancelling may have closed it (a cancellable task answers at once)
      }
      if (child !== undefined) {
        // Closing asynchronously on its own: wait for it, then go on from here.
        const at = node;
        return (child.#closing as Promise<void>).then(() => this.#drain(at));
      }
      if (node === this) break;
      // `node` has no open child left: close it (it only has its own entries to release).
      const parent = node.parent as Scope;
      let result: void | Promise<void>;
      try {
        result = node.#close(false, undefined) ?? node.#closing;
      } catch (error) {
        (this.#errors ??= []).push(error);
        result = undefined;
      }
      if (result !== undefined) {
        return result.then(
          () => this.#drain(parent),
          (error: unknown) => {
            (this.#errors ??= []).push(error);
            return this.#drain(parent);
          },
        );
      }
      node = parent;
    }
    for (let entry = this.entries.tail; entry !== undefined; entry = this.entries.tail) {
      let result: unknown;
      try {
        result = this.#release(entry);
      } catch (error) {
        (this.#errors ??= []).push(error);
        continue;
      }
      if (isPromiseLike(result)) return this.#wait(result, entry).then(() => this.#drain());
    }
    return this.#finish();
  }

  /**
   * The newest child that is open or closing asynchronously. A child closing synchronously further
   * up the stack (one of its releases closed this parent) is passed over: it unlinks itself when
   * done, and waiting for it here would never end.
   */
  #liveChild(): Scope | undefined {
    let child = this.tail as Scope | undefined;
    while (child !== undefined && child.#state !== OPEN && child.#closing === undefined) child = child.prev as Scope | undefined;
    return child;
  }

  /** Releases one entry. A lease still held here was left behind: reclaimed, or destroyed when the close cut off a cancelled, running body. */
  #release(entry: WatchedEntry): unknown {
    if (entry.isLease) {
      const lease = entry as LeaseState;
      (this.#leaked ??= []).push(lease.describe(performance.now()));
      const result = lease.finish(
        this.#destroyHeld,
        this.#abortReason,
        `was reclaimed when ${scopeTitle(this)} closed: the lease outlived its task`,
      );
      // A holder calling lease.release() now must wait for this release, not get a resolved promise.
      // Its failure is the scope's to report, so the holder's promise never rejects.
      if (isPromiseLike(result)) lease.done = Promise.resolve(result).then(noop, noop);
      return result;
    }
    remove(this.entries, entry);
    return (entry as Finalizer).run();
  }

  /**
   * Waits for an async release, at most `disposeTimeoutMs`; a release that hangs is reported and
   * left behind. Releases run one after another, so one deadline timer per close serves them all:
   * re-armed (refresh) for each, cleared at the end (three async releases: ~5.4 µs -> ~4.4 µs).
   */
  #wait(pending: PromiseLike<unknown>, entry: WatchedEntry): Promise<void> {
    const timeoutMs = this.#disposeTimeoutMs ?? settings.disposeTimeoutMs;
    if (timeoutMs === 0) return Promise.resolve(pending).then(noop, (error: unknown) => void (this.#errors ??= []).push(error));
    return new Promise<void>((resume) => {
      this.#waitingFor = entry;
      this.#waitStarted = performance.now();
      this.#resume = resume;
      if (this.#deadline === undefined) this.#deadline = setTimeout(() => this.#giveUp(timeoutMs), timeoutMs);
      else this.#deadline.refresh();
      Promise.resolve(pending).then(
        () => {
          if (this.#resume !== resume) return; // given up on already
          this.#resume = undefined;
          resume();
        },
        (error: unknown) => {
          if (this.#resume !== resume) return;
          this.#resume = undefined;
          (this.#errors ??= []).push(error);
          resume();
        },
      );
    });
  }

  /** The deadline passed: stop waiting for the current release, report it, go on with the next. */
  #giveUp(timeoutMs: number): void {
    const resume = this.#resume;
    if (resume === undefined || this.#waitingFor === undefined) return; // fired between two releases
    this.#resume = undefined;
    this.#reportHungRelease(this.#waitingFor, timeoutMs, this.#waitStarted);
    resume();
  }

  #reportHungRelease(entry: WatchedEntry, timeoutMs: number, startedAt: number): void {
    const now = performance.now();
    const resource = entry.isLease ? (entry as LeaseState).describe(now) : (entry as Finalizer).describe(now - startedAt);
    const info = this.info();
    const what = entry.isLease
      ? `releasing ${resourceName(resource)} acquired at ${siteText(resource.site)}`
      : `running the cleanup of ${resourceName(resource)} (from scope.use/adopt/defer)`;
    deliver(
      {
        type: 'release-timeout',
        scope: info,
        resource,
        timeoutMs,
        message: [
          `${reportTitle(info)}: ${what} did not finish within ${timeoutMs} ms (disposeTimeoutMs); the scope stopped waiting and went on`,
          `  The resource may be stuck (a hung socket or a server that stopped answering) and is likely lost. Look at the release function of this kind; raise disposeTimeoutMs only if releases are legitimately slow.`,
        ].join('\n'),
      },
      this.leakPolicy(),
    );
  }

  /** Everything is released: report, unlink, settle. */
  #finish(): void {
    if (this.#deadline !== undefined) {
      clearTimeout(this.#deadline);
      this.#deadline = this.#waitingFor = undefined;
    }
    if (this.parent !== undefined) remove(this.parent, this);
    removeScope(this);
    this.#state = CLOSED;
    const info = this.reportedStale || this.#leaked !== undefined ? this.info() : undefined;
    if (info !== undefined && this.reportedStale) {
      const ageMs = performance.now() - this.t0;
      deliver(
        {
          type: 'stale-scope-closed',
          scope: info,
          ageMs,
          message: `${reportTitle(info)}, reported stale earlier, closed after ${Math.round(ageMs)} ms`,
        },
        this.leakPolicy(),
      );
    }
    const leaked = this.#leaked;
    if (info !== undefined && leaked !== undefined) this.#reportLeaks(info, leaked);
    if (closeChannel.hasSubscribers) closeChannel.publish({ scope: this, durationMs: performance.now() - this.t0 });
    const errors = this.#errors;
    const bodyError = this.#bodyError;
    this.#errors = this.#leaked = this.#bodyError = undefined;
    if (errors !== undefined && this.#failed) {
      attachReleaseErrors(bodyError, errors);
      warnReleaseErrors(this.info(), errors);
    }
    // A closed scope may be kept by user code; its unformatted capture would keep V8's frames alive.
    if (this.raw !== undefined && this.raw.site === undefined) this.raw = undefined;
    const onClosed = this.#onClosed;
    if (onClosed !== undefined) {
      this.#onClosed = undefined;
      onClosed();
    }
    if (errors !== undefined && !this.#failed) throw foldErrors(errors, scopeTitle(this));
  }

  #reportLeaks(info: ScopeInfo, leaked: LeakedResource[]): void {
    const policy = this.leakPolicy();
    // A cancelled body still running: what it holds is destroyed, and that is the cancellation's
    // doing, not a leak (the task's error is the cancellation reason; no LeakError on top of it).
    const cancelled = this.#destroyHeld;
    const message = cancelled
      ? [
          `${reportTitle(info)} was cancelled while its task still held ${plural(leaked.length, 'resource')}; they were destroyed, not released`,
          ...resourceLines(leaked),
          `  The task did not stop when its signal aborted. Pass scope.signal to what it awaits so that it stops and releases its resources itself.`,
        ].join('\n')
      : [
          `${reportTitle(info)} closed with ${plural(leaked.length, 'unreleased resource')} (reclaimed)`,
          ...resourceLines(leaked),
          `  Release each one on every path (\`await using lease = ...\`, or lease.release() in a finally block), or let the scope own it with scope.use() / scope.adopt().`,
        ].join('\n');
    const report = { type: 'unreleased', scope: info, resources: leaked, policy, cancelled, message } as const;
    deliver(report, policy, policy === 'warn' || (cancelled && policy === 'throw'));
    if (policy === 'throw' && !cancelled) (this.#errors ??= []).push(new LeakError(message, report));
  }

  /** Adds an entry, or — when the scope no longer accepts any — releases it now and throws. */
  #add(entry: Finalizer, verb: string): void {
    if (this.#state === OPEN) {
      push(this.entries, entry);
      return;
    }
    releaseNow(() => entry.run(), entry.kind);
    throw this.#closedError(`${verb} ${entry.kind} in`);
  }

  #closedReason(): ScopeClosedError {
    return withoutStack(() => new ScopeClosedError(`${scopeTitle(this)} closed`));
  }

  #closedError(action: string, handedOver = true): ScopeClosedError {
    return new ScopeClosedError(
      handedOver
        ? `cannot ${action} ${scopeTitle(this)}: it is ${this.state}. What was handed over was released at once. Acquire resources while the task runs, or in a longer-lived scope.`
        : `cannot ${action} ${scopeTitle(this)}: it is ${this.state}. This code is running after its task ended.`,
    );
  }
}

/**
 * `root` and its open descendants for which `take` says yes (a no skips that scope's descendants
 * too), parents first, newest child first. Iterative: the depth of the tree costs no stack.
 */
function subtree(root: Scope, take: (scope: Scope) => boolean): Scope[] {
  const out: Scope[] = [];
  if (!take(root)) return out;
  out.push(root);
  let node = root;
  for (;;) {
    // Down to the newest child taken, else along to an older sibling, else up and along.
    let next = node.tail as Scope | undefined;
    while (next !== undefined && !take(next)) next = next.prev as Scope | undefined;
    while (next === undefined && node !== root) {
      for (next = node.prev as Scope | undefined; next !== undefined && !take(next);) next = next.prev as Scope | undefined;
      if (next === undefined) node = node.parent as Scope;
    }
    if (next === undefined) return out;
    out.push(next);
    node = next;
  }
}

/** Releases something a closed scope refused; a failure is reported, since there is no one to throw to. */
function releaseNow(run: () => unknown, what: string): void {
  const warn = (error: unknown) =>
    process.emitWarning(`releasing ${what} refused by a closed scope failed: ${errorText(error)}`, {
      type: 'ResourceReleaseWarning',
      code: 'CUSTODIAN_RELEASE_FAILED',
    });
  try {
    const result = run();
    if (isPromiseLike(result)) result.then(noop, warn);
  } catch (error) {
    warn(error);
  }
}

/** @internal Validates options and opens a scope under `parent`, capturing the site above `boundary`. */
export function createScope(
  where: string,
  options: ScopeOptions | undefined,
  parent: Scope | undefined,
  boundary: (...args: never[]) => unknown,
): Scope {
  if (options !== undefined) validateOptions(where, options, optionRules);
  if (parent !== undefined && parent.state !== 'open') {
    throw new ScopeClosedError(
      `${where}: cannot open a scope inside ${scopeTitle(parent)}: it is ${parent.state}. This code is still running after its task ended (a cancelled or abandoned task?).`,
    );
  }
  return new Scope(options, parent, captureSite(boundaryOf(options, boundary)));
}

// Scope is an Owner and a WatchedScope, checked here rather than with `implements`: those
// interfaces are internal and must not appear in the published declarations.
type Implements<T extends Owner & WatchedScope> = T;
/** @internal */
export type CheckedScope = Implements<Scope>;
