/**
 * The package as a user installs it: the `exports` map resolves, the public surface is exactly
 * what docs/api.md documents, and the declarations carry no internal member.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('the published package', () => {
  it('resolves "custodian" through its exports map to the built entry point', async () => {
    const resolved = fileURLToPath(import.meta.resolve('custodian'));
    expect(resolved).toBe(`${root}dist/src/index.js`);
  });

  it('exports exactly the documented public names', async () => {
    const api: Record<string, unknown> = await import('custodian');
    expect(Object.keys(api).sort()).toEqual(
      [
        'CustodianError',
        'LEAK_CHANNEL',
        'LeaseReleasedError',
        'LeakError',
        'PoolClosedError',
        'PoolCreateError',
        'PoolFullError',
        'PoolTimeoutError',
        'ScopeClosedError',
        'ScopeTimeoutError',
        'SuppressedError',
        'channels',
        'configure',
        'createPool',
        'currentScope',
        'flattenSuppressed',
        'getConfig',
        'getReleaseErrors',
        'inspect',
        'openScope',
        'resetConfig',
        'track',
        'withScope',
      ].sort(),
    );
    const docs = readFileSync(`${root}docs/api.md`, 'utf8');
    for (const name of Object.keys(api)) expect(docs, `docs/api.md documents ${name}`).toContain(name);
  });

  it('resolves "custodian/vitest" and "custodian/vitest/setup" to the built adapter', () => {
    expect(fileURLToPath(import.meta.resolve('custodian/vitest'))).toBe(`${root}dist/adapters/vitest/index.js`);
    expect(fileURLToPath(import.meta.resolve('custodian/vitest/setup'))).toBe(`${root}dist/adapters/vitest/setup.js`);
  });

  it('exports exactly the documented names from custodian/vitest', async () => {
    const api: Record<string, unknown> = await import('custodian/vitest');
    expect(Object.keys(api).sort()).toEqual(
      [
        'HeapGrowthError',
        'LeakCheckError',
        'allowLeaks',
        'configureLeakCheck',
        'expectNoHeapGrowth',
        'expectNoLeaks',
        'ignoreCurrent',
        'ignoreLeaks',
        'leakMatchers',
      ].sort(),
    );
    const docs = readFileSync(`${root}docs/api.md`, 'utf8');
    for (const name of Object.keys(api)) expect(docs, `docs/api.md documents ${name}`).toContain(name);
    const declarations =
      readFileSync(`${root}dist/adapters/vitest/check.d.ts`, 'utf8') + readFileSync(`${root}dist/adapters/vitest/heap.d.ts`, 'utf8');
    expect(declarations).not.toMatch(/@internal|constructor\(/);
  });

  it("lists every adapter's library as an optional peer dependency, and core depends on generic-pool only", () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as Record<string, Record<string, unknown>>;
    expect(pkg['dependencies']).toEqual({ 'generic-pool': expect.any(String) });
    const peers = ['express', 'fastify', 'ioredis', 'mysql2', 'vitest'];
    expect(Object.keys(pkg['peerDependencies'] ?? {}).sort()).toEqual(peers);
    expect(pkg['peerDependenciesMeta']).toEqual(Object.fromEntries(peers.map((name) => [name, { optional: true }])));
  });

  it('publishes scopes, leases and pools as interfaces, with no machinery and no constructor', () => {
    for (const file of ['scope/scope.d.ts', 'lease/lease.d.ts', 'pool/pool.d.ts']) {
      const text = readFileSync(`${root}dist/src/${file}`, 'utf8');
      expect(text, file).toMatch(/export interface (Scope|Lease|Pool)\b/);
      expect(text, file).not.toMatch(/\bclass\b|@internal|constructor\(/);
      expect(text, file).not.toMatch(/\bentries\b|\breportedStale\b|\bseenAt\b|\bdetach\(|\borigin\b|\bphase\b/);
    }
  });

  it('type-checks a user\u2019s code against the published declarations', () => {
    const tsc = `${root}node_modules/typescript/bin/tsc`;
    const run = () => execFileSync(process.execPath, [tsc, '-p', `${root}test/package/tsconfig.json`], { encoding: 'utf8' });
    expect(run).not.toThrow();
  }, 60_000);
});
