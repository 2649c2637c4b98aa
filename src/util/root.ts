/**
 * The root async context: the one this module was loaded in, with no scope and no other
 * AsyncLocalStorage's store. Timers, sockets and factory calls that outlive the code that started
 * them run here: a connection created while serving request A must not carry A's context
 * (custodian's scope, an app's request id) in its callbacks for the rest of its life, nor keep
 * A's stores alive. (The snapshot is taken when custodian is first imported.)
 */
import { AsyncLocalStorage } from 'node:async_hooks';

/** Runs `fn` in the root async context. */
export const runInRoot: <R>(fn: () => R) => R = AsyncLocalStorage.snapshot();
