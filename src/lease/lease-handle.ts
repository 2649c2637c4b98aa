/**
 * The handle a user holds of a lease (a `Lease`): reads the state, gives the resource back. Its
 * state is private to it; adapters reach what reports say of a lease through `describeLease`.
 */
import { LeaseReleasedError } from '../errors.js';
import { leaseMessages, resourceName } from '../report/messages.js';
import type { LeakedResource } from '../report/types.js';
import { isPromiseLike, noop, RESOLVED } from '../util/promises.js';
import type { Lease } from './lease.js';
import { asPromise, HELD, warnReleaseFailed, type LeaseState } from './lease-state.js';
import { formatSite } from '../report/sites.js';

/** What a report says of `lease`: kind, label, site, how long it has been held, its pool. */
export let describeLease: (lease: Lease<unknown>) => LeakedResource;

export class LeaseHandle<T> implements Lease<T> {
  // Typed without T so that Lease<T> is covariant, like its `value`: a Lease<Connection> is a Lease<object>.
  readonly #s: LeaseState;

  static {
    // The module's own way in, for adapters (through internal.ts): no public member exposes the state.
    describeLease = (lease) => (lease as LeaseHandle<unknown>).#s.leaked(performance.now());
  }

  constructor(state: LeaseState<T>) {
    this.#s = state as LeaseState;
  }

  get value(): T {
    const s = this.#s;
    if (s.state !== HELD)
      throw new LeaseReleasedError(leaseMessages.useAfterRelease(s, formatSite(s.raw), s.releasedHow ?? leaseMessages.releasedByCode));
    return s.value as T;
  }

  get released(): boolean {
    return this.#s.state !== HELD;
  }

  get kind(): string {
    return this.#s.kind;
  }

  get label(): string | undefined {
    return this.#s.label;
  }

  get site(): string | undefined {
    return formatSite(this.#s.raw);
  }

  get acquiredAt(): number {
    return performance.timeOrigin + this.#s.t0;
  }

  release(): Promise<void> {
    return this.#end(false, undefined);
  }

  destroy(reason?: unknown): Promise<void> {
    return this.#end(true, reason);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  [Symbol.dispose](): void {
    const s = this.#s;
    if (s.state !== HELD) return;
    const result = s.finish(false, undefined, leaseMessages.releasedByCode);
    if (isPromiseLike(result)) {
      const resource = s.leaked(performance.now());
      s.done = Promise.resolve(result).then(noop);
      s.done.catch((error: unknown) => warnReleaseFailed(resource, 'by `using` (not awaited)', error));
    }
  }

  /** For `console.log` and `util.inspect`: what and where, never the resource itself. */
  get [Symbol.toStringTag](): string {
    return `Lease ${resourceName(this.#s)}`;
  }

  /** Releases (or destroys) once; later calls return the first call's promise. */
  #end(destroying: boolean, reason: unknown): Promise<void> {
    const s = this.#s;
    if (s.state !== HELD) return s.done ?? RESOLVED;
    try {
      return (s.done = asPromise(s.finish(destroying, reason, leaseMessages.releasedByCode)));
    } catch (error) {
      return (s.done = Promise.reject(error));
    }
  }
}
