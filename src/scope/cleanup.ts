/**
 * A cleanup a scope owns that is not a lease: what `defer`, `adopt` and `use` register. It is run
 * once when the scope closes, in LIFO order with the scope's leases.
 */
import type { WatchedEntry } from '../registry/registry.js';
import type { LeakedResource } from '../report/types.js';

/** What registered a cleanup: `defer(fn)`, `adopt(value, release)` or `use(disposable)`. */
const DEFER = 0;
const ADOPT = 1;
const USE = 2;

export class Cleanup implements WatchedEntry {
  prev: WatchedEntry | undefined = undefined;
  next: WatchedEntry | undefined = undefined;
  readonly isLease = false;

  private constructor(
    private readonly fn: (this: unknown, arg: unknown) => unknown,
    private readonly self: unknown,
    private readonly arg: unknown,
    private readonly how: typeof DEFER | typeof ADOPT | typeof USE,
    /** A synchronous [Symbol.dispose]: as with `using`, what it returns is ignored. */
    private readonly ignoreResult: boolean,
  ) {}

  /** `scope.defer(fn)`: runs `fn()`. */
  static defer(fn: () => unknown): Cleanup {
    return new Cleanup(fn, undefined, undefined, DEFER, false);
  }

  /** `scope.adopt(value, release)`: runs `release(value)`. */
  static adopt<T>(value: T, release: (value: T) => unknown): Cleanup {
    return new Cleanup(release as (arg: unknown) => unknown, undefined, value, ADOPT, false);
  }

  /** `scope.use(disposable)`: calls its `[Symbol.asyncDispose]` or `[Symbol.dispose]`. */
  static use(disposable: object, dispose: (this: unknown) => unknown, isSync: boolean): Cleanup {
    return new Cleanup(dispose, disposable, undefined, USE, isSync);
  }

  /**
   * For reports: `deferred cleanup`, `adopted value`, or the disposable's class name. Read only
   * when something is reported (a function's or a class's name is not free to look up).
   */
  get kind(): string {
    if (this.how === DEFER) return 'deferred cleanup';
    if (this.how === ADOPT) return 'adopted value';
    return (this.self as { constructor?: { name?: string } }).constructor?.name || 'disposable';
  }

  /** For reports: the name of the function given to `defer` or `adopt`. */
  get label(): string | undefined {
    return this.how === USE ? undefined : this.fn.name || undefined;
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
