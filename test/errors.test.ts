import { describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import {
  configure,
  flattenSuppressed,
  getReleaseErrors,
  LeakError,
  openScope,
  ScopeClosedError,
  ScopeTimeoutError,
  SuppressedError,
  withScope,
} from '../src/index.js';
import { useCleanCustodian } from './helpers.js';

useCleanCustodian({ leaks: 'reclaim' });

describe('flattenSuppressed()', () => {
  it('returns a plain error as a one-element list', () => {
    const error = new Error('alone');
    expect(flattenSuppressed(error)).toEqual([error]);
    expect(flattenSuppressed(error)[0]).toBe(error);
  });

  it.each([
    ['a string', 'boom'],
    ['a number', 42],
    ['undefined', undefined],
    ['null', null],
    ['a plain object', { message: 'x' }],
  ])('returns %s as a one-element list', (_name, value) => {
    expect(flattenSuppressed(value)).toEqual([value]);
  });

  it('does not unwrap a non-Error object that only looks like a SuppressedError', () => {
    const lookalike = { name: 'SuppressedError', error: 1, suppressed: 2 };
    expect(flattenSuppressed(lookalike)).toEqual([lookalike]);
  });

  it('does not unwrap an Error named SuppressedError that has no suppressed property', () => {
    const error = new Error('named only');
    error.name = 'SuppressedError';
    expect(flattenSuppressed(error)).toEqual([error]);
  });

  it('lists a SuppressedError chain oldest first', () => {
    const first = new Error('first');
    const second = new Error('second');
    const third = new Error('third');
    const chain = new SuppressedError(third, new SuppressedError(second, first));
    expect(flattenSuppressed(chain)).toEqual([first, second, third]);
  });

  it('lists the errors of a chain built by TypeScript\u2019s `await using` oldest first', async () => {
    const disposedFirst = new Error('b disposed first');
    const disposedLast = new Error('a disposed last');
    const run = async () => {
      await using _a = {
        [Symbol.asyncDispose]: async () => {
          throw disposedLast;
        },
      };
      await using _b = {
        [Symbol.asyncDispose]: async () => {
          throw disposedFirst;
        },
      };
    };
    let caught: unknown;
    await run().catch((error: unknown) => (caught = error));
    expect(flattenSuppressed(caught)).toEqual([disposedFirst, disposedLast]);
  });
});

describe('SuppressedError', () => {
  it("has the standard shape: name, error, suppressed, and the runtime's default message (the polyfill's on Node < 24)", () => {
    const error = new Error('later');
    const suppressed = new Error('earlier');
    const folded = new SuppressedError(error, suppressed);
    expect(folded).toBeInstanceOf(Error);
    expect(folded.name).toBe('SuppressedError');
    expect(folded.error).toBe(error);
    expect(folded.suppressed).toBe(suppressed);
    // Node 24's native SuppressedError, which custodian uses where it exists, has the standard's empty default.
    const native = (globalThis as { SuppressedError?: unknown }).SuppressedError !== undefined;
    expect(folded.message).toBe(native ? '' : 'An error was suppressed during disposal.');
    expect(new SuppressedError(1, 2, 'custom').message).toBe('custom');
  });
});

describe('getReleaseErrors()', () => {
  it.each([
    ['a string', 'boom'],
    ['a number', 0],
    ['a bigint', 1n],
    ['a boolean', true],
    ['undefined', undefined],
    ['null', null],
    ['a symbol', Symbol('s')],
  ])('returns [] for %s', (_name, value) => {
    expect(getReleaseErrors(value)).toEqual([]);
  });

  it('returns [] for an error (or function) nothing was attached to', () => {
    expect(getReleaseErrors(new Error('plain'))).toEqual([]);
    expect(getReleaseErrors(() => {})).toEqual([]);
  });

  it('returns [] when a primitive was thrown by a body whose release also failed', async () => {
    let caught: unknown;
    await withScope((scope) => {
      scope.defer(() => {
        throw new Error('release failed');
      });
      throw 'a string';
    }).catch((error: unknown) => (caught = error));
    expect(caught).toBe('a string');
    expect(getReleaseErrors(caught)).toEqual([]);
  });
});

describe('error classes carry a stable name and code', () => {
  it('ScopeClosedError', () => {
    const error = new ScopeClosedError('closed');
    expect(error).toBeInstanceOf(Error);
    expect([error.name, error.code, error.message]).toEqual(['ScopeClosedError', 'ERR_CUSTODIAN_SCOPE_CLOSED', 'closed']);
  });

  it('ScopeTimeoutError', () => {
    const error = new ScopeTimeoutError('too slow', 250);
    expect(error).toBeInstanceOf(Error);
    expect([error.name, error.code, error.timeoutMs, error.message]).toEqual([
      'TimeoutError',
      'ERR_CUSTODIAN_SCOPE_TIMEOUT',
      250,
      'too slow',
    ]);
  });

  it('LeakError, thrown by a leaking scope\u2019s close under the throw policy, with its report', async () => {
    allowLeaks();
    configure({ leaks: 'throw' });
    const released: string[] = [];
    const scope = openScope({ name: 'strict' });
    scope.track('conn', { release: (v) => void released.push(v), kind: 'test connection' });
    let caught: unknown;
    await scope.close().catch((error: unknown) => (caught = error));
    expect(released).toEqual(['conn']);
    expect(caught).toBeInstanceOf(LeakError);
    if (!(caught instanceof LeakError)) return;
    expect(caught.name).toBe('LeakError');
    expect(caught.code).toBe('ERR_CUSTODIAN_LEAK');
    expect(caught.report.type).toBe('unreleased');
    if (caught.report.type !== 'unreleased') return;
    expect(caught.report.scope.name).toBe('strict');
    expect(caught.report.resources.map((r) => r.kind)).toEqual(['test connection']);
  });
});
