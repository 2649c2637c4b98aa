import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import { withScope, track } from '../src/index.js';
import { collectReports, useCleanCustodian } from './helpers.js';

useCleanCustodian({ leaks: 'reclaim' });

describe('smoke', () => {
  it('reclaims a lease the task forgot and names the line that acquired it', async () => {
    allowLeaks();
    const { reports, stop } = collectReports();
    const released: string[] = [];
    await withScope(
      async () => {
        track('conn', { release: (v) => void released.push(v), kind: 'test connection' });
      },
      { name: 'smoke' },
    );
    stop();
    expect(released).toEqual(['conn']);
    expect(reports).toHaveLength(1);
    expect(reports[0]?.type).toBe('unreleased');
    expect(reports[0]?.message).toMatch(/test\/smoke\.test\.ts:\d+:\d+/);
  });
});
