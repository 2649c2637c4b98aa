/**
 * Timing out a wait, the one way custodian does it: a scope's close waiting for each release (at
 * most `disposeTimeoutMs`), a pool waiting for a validate, a reset, a destroy or its own close.
 *
 * A `Deadline` serves waits made one after another with a single timer, re-armed (`refresh()`) for
 * each: a close that awaits three async releases arms one timer, not three (~5.4 µs -> ~4.4 µs).
 */
import { runInRoot } from './root.js';

/** What a wait settles with when the deadline passed first. */
export const LATE: unique symbol = Symbol('late');

export class Deadline {
  #timer: NodeJS.Timeout | undefined = undefined;
  #settle: ((late: typeof LATE) => void) | undefined = undefined;

  /** `ms`: the limit of each wait (0: none). The timer runs in the root async context. */
  constructor(readonly ms: number) {}

  /** Settles as `pending` does, or resolves `LATE` once `ms` passed first. */
  race<V>(pending: PromiseLike<V>): Promise<V | typeof LATE> {
    if (this.ms === 0) return Promise.resolve(pending);
    return new Promise<V | typeof LATE>((resolve, reject) => {
      this.#settle = resolve;
      if (this.#timer === undefined) this.#timer = runInRoot(() => setTimeout(this.#late, this.ms));
      else this.#timer.refresh();
      Promise.resolve(pending).then(
        (value) => {
          if (this.#settle !== resolve) return; // late already
          this.#settle = undefined;
          resolve(value);
        },
        (error: unknown) => {
          if (this.#settle !== resolve) return;
          this.#settle = undefined;
          reject(error);
        },
      );
    });
  }

  /** Disarms the timer: call it once the last wait is over. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #late = (): void => {
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.(LATE); // undefined: it fired between two waits
  };
}

/** One wait: settles as `pending` does, or resolves `LATE` after `ms` (0: no limit). */
export function within<V>(pending: PromiseLike<V>, ms: number): Promise<V | typeof LATE> {
  if (ms === 0) return Promise.resolve(pending);
  const deadline = new Deadline(ms);
  const raced = deadline.race(pending);
  raced.then(
    () => deadline.stop(),
    () => deadline.stop(),
  );
  return raced;
}
