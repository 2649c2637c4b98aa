/** A cleanup a scope owns that is not a lease: what `defer`, `adopt` and `use` register. */
import type { WatchedEntry } from '../registry/registry.js';
import type { LeakedResource } from '../report/report.js';

/** A cleanup owned by a scope: `defer(fn)`, `adopt(value, release)` or `use(disposable)`. */
export class Finalizer implements WatchedEntry {
  prev: WatchedEntry | undefined = undefined;
  next: WatchedEntry | undefined = undefined;
  readonly isLease = false;
  constructor(
    readonly fn: (this: unknown, arg: unknown) => unknown,
    readonly target: unknown,
    readonly arg: unknown,
    readonly kind: string,
    readonly label: string | undefined,
    /** A synchronous [Symbol.dispose]: as with `using`, what it returns is ignored. */
    readonly ignoreResult = false,
  ) {}

  run(): unknown {
    const result = this.fn.call(this.target, this.arg);
    return this.ignoreResult ? undefined : result;
  }

  describe(heldMs: number): LeakedResource {
    return { kind: this.kind, label: this.label, site: undefined, heldMs };
  }
}
