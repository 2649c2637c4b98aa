/**
 * custodian/mysql as a user installs it: the exports map resolves to the built adapter, which
 * exports exactly the names docs/mysql.md documents. (Runs against dist/: `npm test` builds first.)
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

describe('the custodian/mysql export', () => {
  it('resolves through the exports map to the built adapter and its declarations', () => {
    expect(fileURLToPath(import.meta.resolve('custodian/mysql'))).toBe(`${root}dist/adapters/mysql/index.js`);
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { exports: Record<string, { types: string }> };
    expect(pkg.exports['./mysql']?.types).toBe('./dist/adapters/mysql/index.d.ts');
  });

  it('exports exactly the documented names', async () => {
    const api: Record<string, unknown> = await import('custodian/mysql');
    expect(Object.keys(api).sort()).toEqual(['MysqlConnectError', 'MysqlTransactionError', 'createMysql']);
    const docs = readFileSync(`${root}docs/mysql.md`, 'utf8');
    for (const name of Object.keys(api)) expect(docs, `docs/mysql.md documents ${name}`).toContain(name);
  });

  it('declares no any in its public types', () => {
    for (const file of ['index', 'options', 'transaction', 'errors']) {
      const dts = readFileSync(`${root}dist/adapters/mysql/${file}.d.ts`, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
      expect(dts, file).not.toMatch(/[:<,(|]\s*any\b/);
    }
  });
});
