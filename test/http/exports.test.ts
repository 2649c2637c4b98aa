/**
 * `custodian/http` as a user imports it: the exports map resolves to the built adapter, and the
 * public surface is exactly the documented names.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from '../../adapters/http/index.js';

describe('custodian/http', () => {
  it('resolves through the exports map to the built adapter', () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    expect(fileURLToPath(import.meta.resolve('custodian/http'))).toBe(`${root}dist/adapters/http/index.js`);
  });

  it('exports exactly the documented names, each documented in docs/http.md', () => {
    const names = ['custodianExpress', 'custodianFastify', 'inspectHandler', 'requestScope', 'requestSignal', 'scoped'];
    expect(Object.keys(api).sort()).toEqual(names);
    const docs = readFileSync(new URL('../../docs/http.md', import.meta.url), 'utf8');
    for (const name of names) expect(docs, `docs/http.md documents ${name}`).toContain(`${name}`);
  });
});
