/**
 * The scope lifecycle channels: APM and logging code can follow every task without wrapping it.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { channels, openScope, withScope, type Scope } from '../src/index.js';
import { sleep, useCleanCustodian } from './helpers.js';

useCleanCustodian();

function listen<T>(name: string): { messages: T[]; stop: () => void } {
  const messages: T[] = [];
  const onMessage = (message: unknown) => void messages.push(message as T);
  subscribe(name, onMessage);
  return { messages, stop: () => unsubscribe(name, onMessage) };
}

describe('custodian:scope:open and custodian:scope:close', () => {
  it('publishes { scope } when a scope opens, parents before children', async () => {
    const { messages, stop } = listen<{ scope: Scope }>(channels.scopeOpen);
    let ids: number[] = [];
    await withScope(
      async (outer) => {
        await withScope(async (inner) => void (ids = [outer.id, inner.id]), { name: 'inner' });
      },
      { name: 'outer' },
    );
    stop();
    expect(messages.map((m) => [m.scope.id, m.scope.name])).toEqual([
      [ids[0], 'outer'],
      [ids[1], 'inner'],
    ]);
  });

  it('publishes { scope, durationMs } once the scope has closed, with an exact duration', async () => {
    const { messages, stop } = listen<{ scope: Scope; durationMs: number }>(channels.scopeClose);
    const started = performance.now();
    const scope = openScope({ name: 'timed' });
    await sleep(30);
    await scope.close();
    const elapsed = performance.now() - started;
    stop();
    expect(messages).toHaveLength(1);
    expect(messages[0]?.scope).toBe(scope);
    expect(messages[0]?.scope.state).toBe('closed');
    expect(messages[0]?.durationMs).toBeGreaterThanOrEqual(29);
    expect(messages[0]?.durationMs).toBeLessThanOrEqual(elapsed + 1);
  });

  it('publishes a close for every scope, including one closed by its parent', async () => {
    const { messages, stop } = listen<{ scope: Scope }>(channels.scopeClose);
    const parent = openScope({ name: 'parent' });
    const child = parent.fork({ name: 'child' });
    await parent.close();
    stop();
    expect(messages.map((m) => m.scope)).toEqual([child, parent]);
  });

  it('names the channels it publishes on', () => {
    expect(channels).toEqual({
      leak: 'custodian:leak',
      scopeOpen: 'custodian:scope:open',
      scopeClose: 'custodian:scope:close',
      poolAcquire: 'custodian:pool:acquire',
      poolRelease: 'custodian:pool:release',
      poolCreate: 'custodian:pool:create',
      poolDestroy: 'custodian:pool:destroy',
      poolTimeout: 'custodian:pool:timeout',
      poolLeak: 'custodian:pool:leak',
      sweep: 'custodian:sweep',
    });
  });
});
