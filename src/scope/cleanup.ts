/**
 * A cleanup a scope owns that is not a lease: what `defer`, `adopt` and `use` register. It is run
 * once when the scope closes, in LIFO order with the scope's leases.
 */
import type { WatchedEntry } from '../registry/registry.js';
import type { LeakedResource } from '../report/types.js';

export class Cleanup implements WatchedEntry {
  prev: WatchedEntry | undefined = undefined;
  next: WatchedEntry | undefined = undefined;
  readonly isLease = false;

  private constructor(
    private readonly fn: (this: unknown, arg: unknown) => unknown,
    private readonly self: unknown,
    private readonly arg: unknown,
    /** For reports: `deferred cleanup`, `adopted value`, or the disposable's class name. */
    readonly kind: string,
    readonly label: string | undefined,
    /** A synchronous [Symbol.dispose]: as with `using`, what it returns is ignored. */
    private readonly ignoreResult: boolean,
  ) {}

  /** `scope.defer(fn)`: runs `fn()`. */
  static defer(fn: () => unknown): Cleanup {
    return new Cleanup(fn, undefined, undefined, 'deferred cleanup', fn.name || undefined, false);
  }

  /** `scope.adopt(value, release)`: runs `release(value)`. */
  static adopt<T>(value: T, release: (value: T) => unknown): Cleanup {
    return new Cleanup(release as (arg: unknown) => unknown, undefined, value, 'adopted value', release.name || undefined, false);
  }

  /** `scope.use(disposable)`: calls its `[Symbol.asyncDispose]` or `[Symbol.dispose]`. */
  static use(disposable: object, dispose: (this: unknown) => unknown, isSync: boolean): Cleanup {
    return new Cleanup(dispose, disposable, undefined, disposable.constructor?.name || 'disposable', undefined, isSync);
  }

  run(): unknown {
    const result = this.fn.call(this.self, this.arg);
    return this.ignoreResult ? undefined : result;
  }

  /** What a report says of it (it records no site of its own); `heldMs`: how long it ran. */
  leaked(heldMs: number): LeakedResource {
    return { kind: this.kind, label: this.label, site: undefined, heldMs };
  }
}
