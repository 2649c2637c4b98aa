import { describe, expect, it } from 'vitest';
import { requestSignal, requestScope } from '../../../adapters/http/index.js';

describe('requestSignal() misuse', () => {
  it.each([
    ['a plain object', {}],
    ['a fastify-like request without a scope', { raw: {} }],
    ['undefined (e.g. requestSignal(this.req) in the wrong place)', undefined],
    ['null', null],
  ])('%s: a TypeError that says what to install', (_label, value) => {
    expect(() => requestSignal(value as object)).toThrow(/install the integration/);
    expect(() => requestScope(value as object)).not.toThrow();
  });
});
