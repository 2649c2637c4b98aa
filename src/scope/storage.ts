/**
 * The one AsyncLocalStorage of the library. Every ALS instance makes every `await` in the process
 * dearer, so custodian never creates a second one; adapters reach the current scope through here.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Scope } from './scope.js';

export const storage = new AsyncLocalStorage<Scope>();

export { runInRoot } from '../util/root.js';
