/** Small promise helpers shared by the hot paths. */

/** True for anything `await` would treat as a promise. */
export function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** One settled promise, shared: returning it costs no allocation. */
export const RESOLVED: Promise<void> = Promise.resolve();

export function noop(): void {}
