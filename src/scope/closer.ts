/**
 * One close of a scope: the `closing` phase, and everything it holds.
 *
 * It releases what the scope owns from the newest to the oldest (LIFO), after its open children,
 * which close from the deepest up so that no close recurses into another (a chain 30,000 deep is
 * closed in a loop). Every release runs even when an earlier one throws; the errors are folded the
 * way `await using` folds them. A release that hangs is abandoned after `disposeTimeoutMs` and
 * reported. Closing is synchronous when every release is: no promise is made for work that has none.
 */
import { settings } from '../config/config.js';
import { attachReleaseErrors, foldErrors, LeakError, ScopeClosedError, withoutStack } from '../errors.js';
import type { LeaseState } from '../lease/lease-state.js';
import { remove } from '../registry/list.js';
import { removeScope, type WatchedEntry } from '../registry/registry.js';
import { deliver, warnCloseErrors } from '../report/deliver.js';
import { releaseTimeoutMessage, scopeMessages, scopeTitle, staleScopeClosedMessage, unreleasedMessage } from '../report/messages.js';
import type { LeakedResource, ScopeInfo } from '../report/types.js';
import { Deadline, LATE } from '../util/deadline.js';
import { isPromiseLike, noop } from '../util/promises.js';
import type { Cleanup } from './cleanup.js';
import { CLOSED, closeChannel, type Closing, type ClosingScope } from './phase.js';

export class Closer implements Closing {
  readonly state = 'closing';
  /** Released errors, and leaks under the `throw` policy, in the order met. */
  #errors: unknown[] | undefined = undefined;
  /** The leases the code left behind (reclaimed or destroyed here). */
  #leaked: LeakedResource[] | undefined = undefined;
  /**
   * Decided once: the body may settle while an earlier release is awaited, but what it held was
   * held by a task that was cut off, and stays suspect for the rest of this close. Only a
   * cancelled task's holdings are suspect: a body that closes its own scope knows what it holds.
   */
  readonly #destroyHeld: boolean;
  #deadline: Deadline | undefined = undefined;
  /** Settles once the close is over (asynchronous closes, or a close asked for while one runs). */
  #done: Promise<void> | undefined = undefined;
  #onDone: (() => void) | undefined = undefined;

  constructor(
    private readonly scope: ClosingScope,
    /** The task threw `bodyError`: it stays the error; release errors are attached to it. */
    private readonly failed: boolean,
    private bodyError: unknown,
  ) {
    this.#destroyHeld = scope.bodyRunning && scope.aborted;
  }

  /** Starts the close. Returns `undefined` when it ended synchronously (having thrown its errors, if any). */
  run(): void | Promise<void> {
    this.#begin();
    const result = this.#drive(this.scope);
    if (result !== undefined) this.#done = result.then(noop, noop);
    return result;
  }

  /**
   * The close as a promise, for whoever asks while it runs: when it is synchronous and still on the
   * stack (one of its releases closed this scope again), one that the end of the close settles.
   */
  promise(): Promise<void> {
    return (this.#done ??= new Promise<void>((resolve) => (this.#onDone = resolve)));
  }

  /** True once the close has a promise: it ends asynchronously, or someone waits for it. */
  settlesLater(): boolean {
    return this.#done !== undefined;
  }

  /** What every close does first: disarm the timeout and the outer signal, end the waits, abort the signal. */
  #begin(): void {
    const scope = this.scope;
    scope.stopWatching();
    if (scope.aborted) return; // its cancellation ended its waits (and its subtree's) and aborted its signal
    scope.endAllWaits(undefined);
    scope.controller?.abort(scope.closedReason());
  }

  /**
   * Closes everything under `from` (this scope, or a descendant this close is driving), then goes up
   * to this scope and finishes it. An open child was left running or never closed: it is cancelled,
   * and closed before its parent's own resources, from the deepest scope up. One loop drives the
   * whole subtree, each scope's close starting only when it has no open child left, so that no close
   * recurses into another (a chain 30,000 deep is closed in a loop). A descendant's errors go to its
   * parent's close, as they would if each scope closed its children itself.
   */
  #drive(from: ClosingScope): void | Promise<void> {
    let node = from;
    for (;;) {
      const closer = node.phase as Closer;
      const child = liveChild(node);
      if (child !== undefined && child.phase.state === 'open') {
        if (!child.aborted) {
          const parent = node;
          child.cancel(withoutStack(() => new ScopeClosedError(scopeMessages.closedOverChild(parent, child))));
        }
        // Cancelling may have closed it (a cancellable task answers at once); if not, close it now.
        if (child.phase.state === 'open') {
          const childCloser = new Closer(child, false, undefined);
          child.phase = childCloser;
          childCloser.#begin();
          node = child; // down: its children first
        }
        continue;
      }
      if (child !== undefined) {
        // Closing asynchronously on its own: wait for it, then go on from here.
        const at = node;
        return (child.phase as Closing).promise().then(() => this.#drive(at));
      }
      const released = closer.#releaseEntries();
      if (released !== undefined) {
        const at = node;
        return released.then(() => this.#drive(at));
      }
      if (node === this.scope) return this.#finish();
      const parent = node.parent as ClosingScope;
      try {
        closer.#finish();
      } catch (error) {
        ((parent.phase as Closer).#errors ??= []).push(error);
      }
      node = parent;
    }
  }

  /** Releases the scope's own entries, newest first; continues asynchronously only when a release is async. */
  #releaseEntries(): void | Promise<void> {
    const scope = this.scope;
    for (let entry = scope.entries.tail; entry !== undefined; entry = scope.entries.tail) {
      let result: unknown;
      try {
        result = this.#release(entry);
      } catch (error) {
        (this.#errors ??= []).push(error);
        continue;
      }
      if (isPromiseLike(result)) return this.#wait(result, entry).then(() => this.#releaseEntries());
    }
    return undefined;
  }

  /** Releases one entry. A lease still held here was left behind: reclaimed, or destroyed when the close cut off a cancelled, running body. */
  #release(entry: WatchedEntry): unknown {
    const scope = this.scope;
    if (entry.isLease) {
      const lease = entry as LeaseState;
      (this.#leaked ??= []).push(lease.leaked(performance.now()));
      const result = lease.finish(this.#destroyHeld, scope.abortReason, scopeMessages.reclaimedBy(scope));
      // A holder calling lease.release() now must wait for this release, not get a resolved promise.
      // Its failure is the scope's to report, so the holder's promise never rejects.
      if (isPromiseLike(result)) lease.done = Promise.resolve(result).then(noop, noop);
      return result;
    }
    remove(scope.entries, entry);
    return (entry as Cleanup).run();
  }

  /** Waits for an async release, at most `disposeTimeoutMs`; a release that hangs is reported and left behind. */
  async #wait(pending: PromiseLike<unknown>, entry: WatchedEntry): Promise<void> {
    const deadline = (this.#deadline ??= new Deadline(this.scope.disposeTimeoutMs ?? settings.disposeTimeoutMs));
    const started = performance.now();
    try {
      if ((await deadline.race(pending)) === LATE) this.#reportHung(entry, deadline.ms, started);
    } catch (error) {
      (this.#errors ??= []).push(error);
    }
  }

  #reportHung(entry: WatchedEntry, timeoutMs: number, startedAt: number): void {
    const now = performance.now();
    const resource = entry.isLease ? (entry as LeaseState).leaked(now) : (entry as Cleanup).leaked(now - startedAt);
    const scope = this.scope.info();
    deliver(
      { type: 'release-timeout', scope, resource, timeoutMs, message: releaseTimeoutMessage(scope, resource, entry.isLease, timeoutMs) },
      this.scope.leakPolicy(),
    );
  }

  /** Everything is released: report, unlink, settle. */
  #finish(): void {
    const scope = this.scope;
    this.#deadline?.stop();
    if (scope.parent !== undefined) remove(scope.parent, scope);
    removeScope(scope);
    scope.phase = CLOSED;
    const leaked = this.#leaked;
    const info = scope.reportedStale || leaked !== undefined ? scope.info() : undefined;
    if (info !== undefined && scope.reportedStale) {
      const ageMs = performance.now() - scope.t0;
      deliver({ type: 'stale-scope-closed', scope: info, ageMs, message: staleScopeClosedMessage(info, ageMs) }, scope.leakPolicy());
    }
    if (info !== undefined && leaked !== undefined) this.#reportLeaks(info, leaked);
    if (closeChannel.hasSubscribers) closeChannel.publish({ scope, durationMs: performance.now() - scope.t0 });
    const errors = this.#errors;
    const bodyError = this.bodyError;
    this.#errors = this.#leaked = this.bodyError = undefined;
    if (errors !== undefined && this.failed) {
      attachReleaseErrors(bodyError, errors);
      warnCloseErrors(scope.info(), errors);
    }
    // A closed scope may be kept by user code; its unformatted capture would keep V8's frames alive,
    // and its namer whatever it reads (a request). Its name is final from here.
    if (scope.raw !== undefined && scope.raw.site === undefined) scope.raw = undefined;
    if (scope.namer !== undefined) {
      void scope.name;
      scope.namer = undefined;
    }
    const onDone = this.#onDone;
    if (onDone !== undefined) {
      this.#onDone = undefined;
      onDone();
    }
    if (errors !== undefined && !this.failed) throw foldErrors(errors, scopeTitle(scope));
  }

  #reportLeaks(info: ScopeInfo, leaked: LeakedResource[]): void {
    const policy = this.scope.leakPolicy();
    // A cancelled body still running: what it holds is destroyed, and that is the cancellation's
    // doing, not a leak (the task's error is the cancellation reason; no LeakError on top of it).
    const cancelled = this.#destroyHeld;
    const message = unreleasedMessage(info, leaked, cancelled);
    const report = { type: 'unreleased', scope: info, resources: leaked, policy, cancelled, message } as const;
    deliver(report, policy, policy === 'warn' || (cancelled && policy === 'throw'));
    if (policy === 'throw' && !cancelled) (this.#errors ??= []).push(new LeakError(message, report));
  }
}

/**
 * The newest child that is open or closing asynchronously. A child closing synchronously further
 * up the stack (one of its releases closed this parent) is passed over: it unlinks itself when
 * done, and waiting for it here would never end.
 */
function liveChild(scope: ClosingScope): ClosingScope | undefined {
  let child = scope.tail as ClosingScope | undefined;
  while (child !== undefined && !(child.phase.state === 'open' || (child.phase.state === 'closing' && child.phase.settlesLater()))) {
    child = child.prev as ClosingScope | undefined;
  }
  return child;
}
