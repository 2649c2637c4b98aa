/**
 * The adapter API: the one module custodian's adapters (`adapters/<name>/`) import besides the
 * public `index.ts`. It is not in the package's `exports` map, so applications cannot reach it;
 * adapters ship inside the package and import it by relative path. Nothing in `src/` imports an
 * adapter.
 *
 * What an adapter gets here, beyond the public API (`createPool`, `track`, the `boundary` option,
 * `pool.evict`, `CustodianError`):
 *  - the async context: the library's one AsyncLocalStorage and the root context, to open
 *    connections in (never in a request's);
 *  - option validation with the same error format as the core's;
 *  - deadlines, stack frames and sites;
 *  - the words of reports (a title for a scope, a resource's name, a site, an error's text) and the
 *    reports and warnings an adapter raises itself (`reportUnfinished`, `warnRelease`);
 *  - what test mode needs: the origin probe, the registry's walks, the sweep;
 *  - `inspect()` entries, and heap measurement.
 */

// Async context.
export { runInRoot, storage } from './scope/storage.js';
export { markTask, nameLater } from './scope/task.js';
export { openRootScope } from './scope/context.js';

// Pools.
export { lendAbove } from './pool/create-pool.js';
export { HOOKS_IN_ROOT } from './pool/options.js';

// Validation.
export { describe, rules, validateOptions, type Rule } from './config/validate.js';
export { settings } from './config/config.js';

// Promises and deadlines.
export { isPromiseLike, noop, RESOLVED } from './util/promises.js';
export { keepShape } from './util/shapes.js';
export { Deadline, LATE, within } from './util/deadline.js';

// Sites and stack frames.
export {
  boundaryOf,
  bundled,
  captureSite,
  formatSite,
  inNodeModules,
  isOwnFile,
  parseFrame,
  parseSite,
  relativeToCwd,
  stackFrames,
  type Boundary,
  type Frame,
  type RawSite,
} from './report/sites.js';

// Reports: their words, and those an adapter raises.
export { deliver, emitLeakWarning, reportUnfinished, resetWarningThrottle, warnRelease } from './report/deliver.js';
export { errorText, plural, reportTitle, resourceLines, resourceName, scopeTitle, siteText, unknownSite } from './report/messages.js';
export { describeLease } from './lease/lease-handle.js';

// Test mode: who acquired what, and what is alive.
export { origins, subjects, type Originated } from './report/origin.js';
export { leasesOf, liveLeases, openScopes, type WatchedLease, type WatchedScope } from './registry/registry.js';
export { sweep } from './registry/sweep.js';

// inspect() entries.
export { showInInspect, type Inspectable } from './registry/inspect.js';

// Memory.
export { fullGc, heapAfterGc, memoryAfterGc, turn } from './measure/heap.js';
export { median, theilSen, type Fit } from './measure/fit.js';
