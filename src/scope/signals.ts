/**
 * Outer signals (`withScope(fn, { signal })`): one 'abort' listener per signal, however many scopes
 * watch it. A long-lived signal shared by every task (a shutdown signal) must not collect a
 * listener per task, nor trip Node's MaxListenersExceededWarning at eleven concurrent tasks.
 */

/** What a watching scope must offer. */
export interface Cancellable {
  cancel(reason: unknown): void;
}

const signalWatchers = new WeakMap<AbortSignal, { scopes: Set<Cancellable>; listener: () => void }>();

/** Cancels `scope` with the signal's reason when it aborts. */
export function watchSignal(signal: AbortSignal, scope: Cancellable): void {
  let watch = signalWatchers.get(signal);
  if (watch === undefined) {
    const scopes = new Set<Cancellable>();
    const listener = () => {
      signalWatchers.delete(signal);
      for (const s of [...scopes]) s.cancel(signal.reason);
    };
    watch = { scopes, listener };
    signalWatchers.set(signal, watch);
    signal.addEventListener('abort', listener, { once: true });
  }
  watch.scopes.add(scope);
}

/** Stops watching; the listener goes when the last scope does. */
export function unwatchSignal(signal: AbortSignal, scope: Cancellable): void {
  const watch = signalWatchers.get(signal);
  if (watch === undefined) return;
  watch.scopes.delete(scope);
  if (watch.scopes.size > 0) return;
  signalWatchers.delete(signal);
  signal.removeEventListener('abort', watch.listener);
}
