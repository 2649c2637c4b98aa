/**
 * `custodian/vitest/setup`: one line in `setupFiles` fails every test that leaves a lease, an open
 * scope or a borrowed pool resource behind, and registers the `toLeakResources` matcher.
 *
 * @example
 * // vitest.config.ts
 * export default defineConfig({ test: { setupFiles: ['custodian/vitest/setup'] } });
 */
import { expect } from 'vitest';
import { installLeakCheck } from './hooks.js';
import { leakMatchers } from './matchers.js';

installLeakCheck();
expect.extend(leakMatchers);
