/**
 * The one AsyncLocalStorage of the library. Every ALS instance makes every `await` in the process
 * dearer, so custodian never creates a second one; adapters reach the current scope through here.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Scope } from './scope.js';

export const storage = new AsyncLocalStorage<Scope>();

/**
 * Runs a function in the async context this module was loaded in: no scope, and no other
 * AsyncLocalStorage's store either. The pool runs its factory functions and arms its timers here:
 * a connection created while serving request A must not carry A's context (custodian's scope, an
 * app's request id) in its socket callbacks for the rest of its life, nor keep A's stores alive.
 */
export const runInRoot: <R>(fn: () => R) => R = AsyncLocalStorage.snapshot();
