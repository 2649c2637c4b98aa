/**
 * A scope as custodian keeps it: its place in the tree of open scopes, what it owns, how it can be
 * cancelled, and its phase. The user holds it as a `Scope` (scope.ts) and cannot reach the rest.
 *
 * Its phase is a union with what each phase holds: `OPEN` (nothing more), a `Closer` (the close
 * under way: what is left to release, the errors and leaks met so far), `CLOSED`. Running the
 * task is `runTask` (task.ts); closing is the `Closer` (closer.ts).
 */
import { policyRule, settings } from '../config/config.js';
import { describe, rules, validateOptions } from '../config/validate.js';
import { ScopeClosedError, ScopeTimeoutError, withoutStack } from '../errors.js';
import type { Lease, TrackOptions } from '../lease/lease.js';
import { createLease } from '../lease/acquire.js';
import type { Owner } from '../lease/lease-state.js';
import { boundaryOf, captureSite, formatSite, type Boundary, type RawSite } from '../report/sites.js';
import type { Linked } from '../registry/chain.js';
import { push, remove, type List, type Node } from '../registry/list.js';
import { addScope, type WatchedEntry, type WatchedScope } from '../registry/registry.js';
import { coarseNow, wake } from '../registry/sweep.js';
import { warnRelease } from '../report/deliver.js';
import { releaseFailedMessage, resourceName, scopeMessages } from '../report/messages.js';
import { currentOrigin, recordSubject } from '../report/origin.js';
import type { LeakPolicy, ScopeInfo } from '../report/types.js';
import { isPromiseLike, noop, RESOLVED } from '../util/promises.js';
import { keepShape } from '../util/shapes.js';
import { Cleanup } from './cleanup.js';
import { Closer } from './closer.js';
import { CLOSED, closeChannel, OPEN, openChannel, type ClosingScope, type Phase } from './phase.js';
import type { Scope, ScopeOptions, ScopeState } from './scope.js';
import { unwatchSignal, watchSignal } from './signals.js';
import { storage } from './storage.js';

/**
 * Something waiting on behalf of a scope's task (a pool acquire). When the scope is cancelled or
 * starts closing, the wait is told at once, so it can give up instead of handing a resource to a
 * task that is over.
 */
export interface ScopeWaiter extends Node {
  scopeEnded(reason: unknown): void;
}

const optionRules = {
  name: rules.string,
  signal: rules.signal,
  timeout: rules.positiveMs,
  leaks: policyRule,
  disposeTimeoutMs: rules.ms,
  boundary: rules.function,
};

let nextId = 1;
/** The `inert` argument of the constructor (see util/shapes.ts). */
const INERT: unique symbol = Symbol('inert');

export class ScopeNode implements Scope, Owner, WatchedScope, ClosingScope {
  readonly id: number;
  #name: string | undefined;
  /**
   * Asked for a better name when the name is read, until it gives one: for adapters that learn
   * the name once the task is under way (a request's route template, see nameLater).
   */
  namer: (() => string | undefined) | undefined = undefined;
  readonly parent: ScopeNode | undefined;

  // Place in the tree: sibling links in the parent's list of open children, and the newest child.
  prev: WatchedScope | undefined = undefined;
  next: WatchedScope | undefined = undefined;
  tail: WatchedScope | undefined = undefined;
  // Place in the registry's chain of every open scope (see registry.ts).
  older: Linked | undefined = undefined;
  newer: Linked | undefined = undefined;

  /** What it owns: leases and cleanups, newest at the tail. */
  entries: List<WatchedEntry> = { tail: undefined };
  /** performance.now() at open, within one sweep period (see registry.coarseNow). */
  readonly t0: number;
  /** Where it was opened (dropped at close unless formatted: V8 keeps the frames' objects alive). */
  raw: RawSite | undefined;
  /** When the sweep first saw it open; NaN, not 0: a double from the start (see registry.ts). */
  seenAt = Number.NaN;
  reportedStale = false;
  /** Acquires waiting on behalf of this scope's task (see ScopeWaiter), allocated on first use. */
  waiters: List<ScopeWaiter> | undefined = undefined;
  /** Who opened it (a test, in test mode); see origin.ts. */
  readonly origin: object | undefined = currentOrigin();

  phase: Phase = OPEN;
  // Cancellation. A cancelled scope stays open until its task answers; `abortReason` is the answer.
  aborted = false;
  abortReason: unknown = undefined;
  controller: AbortController | undefined = undefined;
  timer: NodeJS.Timeout | undefined = undefined;
  outer: AbortSignal | undefined = undefined;
  readonly policy: LeakPolicy | undefined;
  readonly disposeTimeoutMs: number | undefined;
  // The task (see task.ts).
  /** True when a timeout or outer signal (here or on an ancestor) can cancel the task: `withScope` then races the body. */
  readonly cancellable: boolean;
  bodyRunning = false;
  /** Answers the pending `withScope` with a cancellation while its body still runs. */
  interrupt: ((reason: unknown) => void) | undefined = undefined;

  /** `name`, when given, is used instead of `options.name` (a request's, with options shared by every request). */
  constructor(
    options: ScopeOptions | undefined,
    parent: ScopeNode | undefined,
    raw: RawSite | undefined,
    name?: string,
    /** Built only to keep the class's shape (see util/shapes.ts): not registered, never opened. */
    inert?: typeof INERT,
  ) {
    this.#name = name ?? options?.name;
    this.parent = parent;
    this.raw = raw;
    if (inert === INERT) {
      this.id = 0;
      this.t0 = performance.now();
      this.policy = this.disposeTimeoutMs = undefined;
      this.cancellable = false;
      this.phase = CLOSED;
      return;
    }
    this.id = nextId++;
    wake(); // first: it refreshes the coarse clock when the sweep was idle
    addScope(this);
    // Exact open times only for those who measure scopes (diagnostics channel subscribers).
    this.t0 = openChannel.hasSubscribers || closeChannel.hasSubscribers ? performance.now() : coarseNow();
    this.policy = options?.leaks ?? parent?.policy;
    this.disposeTimeoutMs = options?.disposeTimeoutMs ?? parent?.disposeTimeoutMs;
    this.cancellable = options?.timeout !== undefined || options?.signal !== undefined || (parent !== undefined && parent.cancellable);
    if (parent !== undefined) push(parent, this);
    if (options !== undefined) {
      const { timeout, signal } = options;
      if (timeout !== undefined) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.cancel(withoutStack(() => new ScopeTimeoutError(scopeMessages.timedOut(this, timeout), timeout)));
        }, timeout);
      }
      if (signal !== undefined) {
        if (signal.aborted) this.cancel(signal.reason);
        else {
          this.outer = signal;
          watchSignal(signal, this);
        }
      }
    }
    // Opened under a cancelled scope (a plain one stays open until its body settles): start
    // cancelled. After the options, so that cancel() also disarms the timer and the listener.
    if (parent !== undefined && parent.aborted) this.cancel(parent.abortReason);
    if (openChannel.hasSubscribers) openChannel.publish({ scope: this });
  }

  /** Its name; a namer given by an adapter (nameLater) is asked for a better one until it answers. */
  get name(): string | undefined {
    const namer = this.namer;
    if (namer !== undefined) {
      const better = namer();
      if (better !== undefined) {
        this.#name = better;
        this.namer = undefined;
      }
    }
    return this.#name;
  }

  get state(): ScopeState {
    return this.phase.state;
  }

  get signal(): AbortSignal {
    let controller = this.controller;
    if (controller === undefined) {
      controller = this.controller = new AbortController();
      if (this.aborted) controller.abort(this.abortReason);
      else if (this.phase !== OPEN) controller.abort(this.closedReason());
    }
    return controller.signal;
  }

  get site(): string | undefined {
    return formatSite(this.raw);
  }

  /** The scope as reports show it. */
  info(): ScopeInfo {
    return recordSubject({ id: this.id, name: this.name, site: formatSite(this.raw) }, this);
  }

  cancel(reason?: unknown): void {
    if (this.aborted || this.phase === CLOSED) return;
    const abortReason = reason === undefined ? withoutStack(() => new DOMException(scopeMessages.cancelled(this), 'AbortError')) : reason;
    // The scope and its open descendants not cancelled yet (a cancelled one's are cancelled
    // already), parents first. Collected first and worked on in flat loops: a tree 30,000 deep
    // must not take 30,000 frames of stack.
    const tree = subtree(this, (scope) => !scope.aborted && scope.phase !== CLOSED);
    for (const scope of tree) {
      scope.aborted = true;
      scope.abortReason = abortReason;
      scope.stopWatching();
    }
    // Waits first, the children's too: an abort listener that releases a pooled lease must not hand
    // it to this very task, nor to one of its children about to be cancelled.
    for (const scope of tree) if (scope.waiters?.tail !== undefined) scope.endWaits(abortReason);
    for (const scope of tree) scope.controller?.abort(abortReason);
    // The tasks' answers, children before parents: a cancellable task's scope closes when answered,
    // and its children are closed (or closing) by then.
    for (let i = tree.length - 1; i >= 0; i--) {
      const scope = tree[i] as ScopeNode;
      const interrupt = scope.interrupt;
      if (interrupt === undefined) continue;
      scope.interrupt = undefined;
      // The task's releases run now: in its parent's context, not in that of whoever cancelled it
      // (a request aborting a shared signal must not own another request's cleanups).
      storage.run(scope.parent as Scope, interrupt, abortReason);
    }
  }

  run<R>(fn: (scope: Scope) => R): R {
    if (typeof fn !== 'function') throw new TypeError(`scope.run(): fn must be a function, got ${describe(fn)}`);
    if (this.phase !== OPEN) throw this.refused('run a function in', false);
    return storage.run(this, fn, this);
  }

  fork(options?: ScopeOptions): Scope {
    return createScope('scope.fork()', options, this, ScopeNode.prototype.fork);
  }

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
    this.add(Cleanup.use(value, dispose as (this: unknown) => unknown, typeof asyncDispose !== 'function'), 'use');
    return value;
  }

  adopt<T>(value: T, release: (value: T) => unknown): T {
    if (typeof release !== 'function') {
      throw new TypeError(`scope.adopt(): release must be a function that gives the value back, got ${describe(release)}`);
    }
    this.add(Cleanup.adopt(value, release), 'adopt');
    return value;
  }

  defer(fn: () => unknown): void {
    if (typeof fn !== 'function') throw new TypeError(`scope.defer(): fn must be a function, got ${describe(fn)}`);
    this.add(Cleanup.defer(fn), 'defer');
  }

  track<T>(value: T, options: TrackOptions<T>): Lease<T> {
    return this.trackAt('scope.track()', value, options, ScopeNode.prototype.track);
  }

  /** `track`, with the site captured above `boundary` (the public function the user called). */
  trackAt<T>(where: string, value: T, options: TrackOptions<T>, boundary: Boundary): Lease<T> {
    if (this.phase !== OPEN) {
      if (typeof options?.release === 'function') {
        const what = resourceName({ kind: options.kind ?? 'resource', label: options.label });
        releaseNow(() => options.release(value), what);
      }
      throw this.refused(`track ${options?.kind ?? 'a resource'} in`);
    }
    return createLease(where, value, options, this, captureSite(boundaryOf(options, boundary)));
  }

  /** Why this task may acquire nothing more: the cancellation reason, or `undefined` while open and not cancelled. */
  cancelReason(): unknown {
    return this.aborted ? this.abortReason : undefined;
  }

  /** Registers a wait made on behalf of this scope's task; `scopeEnded` is called on cancel or close. */
  addWaiter(waiter: ScopeWaiter): void {
    push((this.waiters ??= { tail: undefined }), waiter);
  }

  /** The wait is over (served, timed out, aborted). */
  removeWaiter(waiter: ScopeWaiter): void {
    if (this.waiters !== undefined) remove(this.waiters, waiter);
  }

  /** Ends the waits of this scope and of its open descendants (`reason`, or each one's own). */
  endAllWaits(reason: unknown): void {
    if (this.tail === undefined) {
      if (this.waiters?.tail !== undefined) this.endWaits(reason ?? this.closedReason());
      return;
    }
    for (const scope of subtree(this, (s) => s === this || s.phase === OPEN)) {
      if (scope.waiters?.tail !== undefined) {
        scope.endWaits(reason ?? (scope === this ? this.closedReason() : (scope.abortReason ?? scope.closedReason())));
      }
    }
  }

  /** Tells every waiter the task is over, newest first; each one unlinks itself or is unlinked here. */
  endWaits(reason: unknown): void {
    const list = this.waiters as List<ScopeWaiter>;
    for (let waiter = list.tail; waiter !== undefined; waiter = list.tail) {
      remove(list, waiter);
      waiter.scopeEnded(reason);
    }
  }

  /** The leak policy for this scope: its own, else inherited, else the global one. */
  leakPolicy(): LeakPolicy {
    return this.policy ?? settings.leaks;
  }

  /** A lease was acquired into this scope. */
  attach(entry: WatchedEntry): void {
    push(this.entries, entry);
  }

  /** A lease of this scope was released by its holder: forget it. */
  detach(entry: WatchedEntry): void {
    remove(this.entries, entry);
  }

  close(): Promise<void> {
    if (this.bodyRunning && this.phase === OPEN && !this.isCurrent()) {
      // Closed from outside while its task runs: that is a cancellation (as when a parent closes),
      // so the task is answered now and what it holds is destroyed, not handed back in use.
      this.cancel(withoutStack(() => new ScopeClosedError(scopeMessages.closedWhileRunning(this))));
    }
    try {
      return this.startClose(false, undefined) ?? RESOLVED;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Starts closing (`failed`: the task threw `bodyError`). Returns `undefined` when the close ended
   * synchronously (and throws its errors), or a promise when a release was async. Called again
   * while closing, returns the close under way.
   */
  startClose(failed: boolean, bodyError: unknown): void | Promise<void> {
    const phase = this.phase;
    if (phase.state === 'closed') return undefined;
    if (phase.state === 'closing') return phase.promise();
    const closer = (this.phase = new Closer(this, failed, bodyError));
    return closer.run();
  }

  /** Disarms the timeout and the outer signal's watch. */
  stopWatching(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.outer !== undefined) {
      unwatchSignal(this.outer, this);
      this.outer = undefined;
    }
  }

  closedReason(): ScopeClosedError {
    return withoutStack(() => new ScopeClosedError(scopeMessages.closed(this)));
  }

  /** The error for something handed to, or run in, a scope that no longer takes anything. */
  refused(action: string, handedOver = true): ScopeClosedError {
    return new ScopeClosedError(scopeMessages.refused(this, this.state, action, handedOver));
  }

  /** True when the code running now is this scope's own task (or one of its children's). */
  private isCurrent(): boolean {
    for (let scope: Scope | undefined = storage.getStore(); scope !== undefined; scope = scope.parent) if (scope === this) return true;
    return false;
  }

  /** Adds a cleanup, or — when the scope no longer accepts any — runs it now and throws. */
  private add(entry: Cleanup, verb: string): void {
    if (this.phase === OPEN) {
      push(this.entries, entry);
      return;
    }
    releaseNow(() => entry.run(), entry.kind);
    throw this.refused(`${verb} ${entry.kind} in`);
  }
}

/**
 * `root` and its open descendants for which `take` says yes (a no skips that scope's descendants
 * too), parents first, newest child first. Iterative: the depth of the tree costs no stack.
 */
export function subtree(root: ScopeNode, take: (scope: ScopeNode) => boolean): ScopeNode[] {
  const out: ScopeNode[] = [];
  if (!take(root)) return out;
  out.push(root);
  let node = root;
  for (;;) {
    // Down to the newest child taken, else along to an older sibling, else up and along.
    let next = node.tail as ScopeNode | undefined;
    while (next !== undefined && !take(next)) next = next.prev as ScopeNode | undefined;
    while (next === undefined && node !== root) {
      for (next = node.prev as ScopeNode | undefined; next !== undefined && !take(next);) next = next.prev as ScopeNode | undefined;
      if (next === undefined) node = node.parent as ScopeNode;
    }
    if (next === undefined) return out;
    out.push(next);
    node = next;
  }
}

/** Releases something a closed scope refused; a failure is reported, since there is no one to throw to. */
function releaseNow(run: () => unknown, what: string): void {
  const warn = (error: unknown) => warnRelease(releaseFailedMessage(what, 'refused by a closed scope', error));
  try {
    const result = run();
    if (isPromiseLike(result)) result.then(noop, warn);
  } catch (error) {
    warn(error);
  }
}

/** Validates options and opens a scope under `parent`, capturing the site above `boundary`. */
export function createScope(
  where: string,
  options: ScopeOptions | undefined,
  parent: ScopeNode | undefined,
  boundary: Boundary,
): ScopeNode {
  if (options !== undefined) validateOptions(where, options, optionRules);
  if (parent !== undefined && parent.phase !== OPEN) {
    throw new ScopeClosedError(scopeMessages.openInside(where, parent, parent.state));
  }
  return new ScopeNode(options, parent, captureSite(boundaryOf(options, boundary)));
}

// The shapes of a scope, its close and a cleanup, kept for the process (see util/shapes.ts).
{
  const scope = keepShape(new ScopeNode(undefined, undefined, undefined, undefined, INERT));
  keepShape(new Closer(scope, false, undefined));
  keepShape(Cleanup.defer(noop));
}
