/**
 * Running a task in a scope (what `withScope` does): run the body with the scope current, close
 * the scope when the body settles or the scope is cancelled, and answer the caller. The body's
 * error always stays primary; release errors never replace it.
 *
 * On Node 20 every promise pays for the AsyncLocalStorage hooks, so the common case derives the
 * answer from the body's own promise (one `then`). Only a scope that can be cancelled from outside
 * (a `timeout` or `signal` on it or an ancestor) pays for a second promise, which lets a
 * cancellation stop the wait even when the body ignores the signal.
 */
import { isPromiseLike } from '../util/promises.js';
import type { Scope } from './scope.js';
import type { ScopeNode } from './scope-node.js';
import { storage } from './storage.js';

export function runTask<R>(scope: ScopeNode, fn: (scope: Scope) => R): Promise<Awaited<R>> {
  // Cancelled before it started (an outer signal already aborted): do not start the task at all.
  if (scope.aborted) return settle<R>(scope, true, scope.abortReason);
  let result: R;
  try {
    result = storage.run(scope, fn, scope);
  } catch (error) {
    return settle<R>(scope, true, scope.aborted ? scope.abortReason : error);
  }
  if (!isPromiseLike(result)) return scope.aborted ? settle<R>(scope, true, scope.abortReason) : settle<R>(scope, false, result);
  scope.bodyRunning = true;
  if (!scope.cancellable) {
    // Cancelled while the body ran (scope.cancel(), or its parent closed first): the task's
    // outcome no longer counts, and the cancellation reason is the answer, as on the other path.
    return Promise.resolve(result).then(
      (value) => {
        scope.bodyRunning = false;
        return (scope.aborted ? after(scope, true, scope.abortReason) : after(scope, false, value)) as Awaited<R>;
      },
      (error: unknown) => {
        scope.bodyRunning = false;
        return after(scope, true, scope.aborted ? scope.abortReason : error) as Awaited<R>;
      },
    );
  }
  return new Promise<Awaited<R>>((resolve, reject) => {
    let answered = false;
    const answer = (failed: boolean, outcome: unknown) => {
      if (answered) return; // the body settling after a cancellation must not answer twice
      answered = true;
      try {
        resolve(after(scope, failed, outcome) as Awaited<R>);
      } catch (error) {
        reject(error);
      }
    };
    scope.interrupt = (reason) => answer(true, reason);
    // Promise.resolve: a thenable whose then() throws becomes a rejection, not a scope left open.
    Promise.resolve(result).then(
      (value) => {
        scope.bodyRunning = false;
        if (scope.interrupt === undefined) return; // cancelled earlier: the caller was already answered
        scope.interrupt = undefined;
        answer(false, value);
      },
      (error: unknown) => {
        scope.bodyRunning = false;
        if (scope.interrupt === undefined) return;
        scope.interrupt = undefined;
        answer(true, error);
      },
    );
    // The body may have cancelled its own scope before its first await.
    if (scope.aborted) {
      scope.interrupt = undefined;
      answer(true, scope.abortReason);
    }
  });
}

/**
 * For adapters whose task is not one function call (an HTTP request lives until its response has
 * finished): marks the task of `scope` (from `openScope`) as running, or over. While it runs, a
 * close that follows a cancellation destroys what the task holds instead of handing it back, as
 * for a cut-off `withScope` body, and a `close()` from outside cancels it first; once over, what
 * is left is an ordinary leak.
 */
export function markTask(scope: Scope, running: boolean): void {
  (scope as ScopeNode).bodyRunning = running;
}

/**
 * For adapters that learn a scope's name while its task runs (Express routes a request after its
 * scope opened): `namer` is asked whenever the name is read (a report, `inspect()`) until it
 * answers with a string, which then becomes the scope's name. The name is settled when the scope
 * closes: the namer is asked one last time, and dropped.
 */
export function nameLater(scope: Scope, namer: () => string | undefined): void {
  (scope as ScopeNode).namer = namer;
}

/** `after` as a promise, for tasks that ended synchronously. */
function settle<R>(scope: ScopeNode, failed: boolean, outcome: unknown): Promise<Awaited<R>> {
  try {
    return Promise.resolve(after(scope, failed, outcome) as Awaited<R>);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Closes after the task ended. Returns the body's value (or a promise of it when a release was
 * async) or throws: the body's error when it failed, else the release errors.
 */
function after(scope: ScopeNode, failed: boolean, outcome: unknown): unknown {
  const closing = scope.startClose(failed, failed ? outcome : undefined);
  if (closing === undefined) {
    if (failed) throw outcome;
    return outcome;
  }
  return closing.then(() => {
    if (failed) throw outcome;
    return outcome;
  });
}
