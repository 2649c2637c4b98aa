/**
 * custodian/soak as a user installs it: the `./soak` export resolves to the built adapter with
 * exactly the documented names, and the `custodian` bin is the CLI (a shebang, runnable by node).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('custodian/soak in the package', () => {
  it('resolves "custodian/soak" to the built adapter, which exports exactly the documented names', async () => {
    expect(fileURLToPath(import.meta.resolve('custodian/soak'))).toBe(`${root}dist/adapters/soak/index.js`);
    const api: Record<string, unknown> = await import('custodian/soak');
    expect(Object.keys(api).sort()).toEqual(['formatReport', 'renderChart', 'soak', 'soakServer']);
    const docs = readFileSync(`${root}docs/memory.md`, 'utf8');
    for (const name of Object.keys(api)) expect(docs, `docs/memory.md documents ${name}`).toContain(`${name}(`);
  });

  it('has a `custodian` bin: the CLI, with a shebang, that prints its usage', () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin).toEqual({ custodian: './dist/adapters/soak/cli.js' });
    const cli = `${root}dist/adapters/soak/cli.js`;
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const usage = execFileSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
    expect(usage).toMatch(/^usage: custodian soak <module>/);
  });
});
