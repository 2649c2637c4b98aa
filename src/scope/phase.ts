/**
 * A scope's phase, and what a close needs of the scope it closes. A union with what each phase
 * holds: `OPEN` (nothing more), a close under way (the `Closer`, closer.ts: what is left to
 * release, the errors and leaks met so far), `CLOSED`.
 */
import { channel } from 'node:diagnostics_channel';
import type { RawSite } from '../report/sites.js';
import type { WatchedScope } from '../registry/registry.js';
import { channels } from '../report/channels.js';

/** The phases that hold nothing of their own. */
export const OPEN = { state: 'open' } as const;
export const CLOSED = { state: 'closed' } as const;

/** A close under way. */
export interface Closing {
  readonly state: 'closing';
  /** The close as a promise (for those who ask while it runs). */
  promise(): Promise<void>;
  /** True once the close has a promise: it ends asynchronously, or someone waits for it. */
  settlesLater(): boolean;
}

export type Phase = typeof OPEN | Closing | typeof CLOSED;

/** What a close needs of the scope it closes, and of its children (implemented by ScopeNode). */
export interface ClosingScope extends WatchedScope {
  readonly parent: ClosingScope | undefined;
  readonly disposeTimeoutMs: number | undefined;
  phase: Phase;
  raw: RawSite | undefined;
  /** Asked for a better name until it gives one (see nameLater); settled when the scope closes. */
  namer: (() => string | undefined) | undefined;
  aborted: boolean;
  abortReason: unknown;
  bodyRunning: boolean;
  controller: AbortController | undefined;
  cancel(reason: unknown): void;
  stopWatching(): void;
  endAllWaits(reason: unknown): void;
  closedReason(): Error;
  startClose(failed: boolean, bodyError: unknown): void | Promise<void>;
}

export const openChannel = channel(channels.scopeOpen);
export const closeChannel = channel(channels.scopeClose);
