/**
 * custodian/vitest: tests that leak resources fail, and say where. Add `custodian/vitest/setup`
 * to `setupFiles` to check every test; use expectNoLeaks() or the `toLeakResources` matcher for
 * one function, and expectNoHeapGrowth() for memory. See docs/testing.md.
 */
export { expectNoLeaks } from './block.js';
export { LeakCheckError } from './check.js';
export type { FoundLeak } from './findings.js';
export { expectNoHeapGrowth, HeapGrowthError, type HeapGrowth, type HeapGrowthOptions, type HeapSample } from './heap.js';
export type { IgnoreRules } from './ignore.js';
export { leakMatchers } from './matchers.js';
export { allowLeaks, configureLeakCheck, ignoreCurrent, ignoreLeaks, type LeakCheckOptions } from './settings.js';
