import { afterEach, describe, expect, it } from 'vitest';
import { allowLeaks } from '../adapters/vitest/index.js';
import { configure, getConfig, LeakError, openScope, resetConfig, type Config, type Settings } from '../src/index.js';
import { useCleanCustodian, thrownBy } from './helpers.js';

useCleanCustodian();

/** The documented defaults (outside production). */
const DEFAULTS: Settings = {
  leaks: 'warn',
  sites: 'always',
  sampleRate: 0.01,
  staleScopeMs: 60_000,
  leakThresholdMs: 0,
  disposeTimeoutMs: 10_000,
  growthIntervalMs: 10_000,
  growthSamples: 5,
  warningThrottleMs: 10_000,
  onLeak: undefined,
};

/** Runs `fn` and returns what it threw (fails the test when it does not throw). */

/** Closes a scope holding one unreleased lease: rejects with a LeakError under the `throw` policy. */
async function closeWithALeak(): Promise<unknown> {
  const scope = openScope();
  scope.track('conn', { release: () => {} });
  try {
    await scope.close();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe('configure() returns the previous settings, and configure(previous) restores them', () => {
  it('returns every setting as it was before the call', () => {
    const before = getConfig();
    const previous = configure({ leaks: 'throw', staleScopeMs: 500 });
    expect(previous).toEqual(before);
    expect(getConfig()).toEqual({ ...before, leaks: 'throw', staleScopeMs: 500 });
  });

  it('restores exactly the earlier settings with configure(previous)', () => {
    const before = getConfig();
    const previous = configure({ leaks: 'reclaim', sites: 'off', sampleRate: 0.5, disposeTimeoutMs: 5, growthSamples: 9 });
    configure(previous);
    expect(getConfig()).toEqual(before);
  });

  it('restores an unset onLeak hook (undefined) with configure(previous)', () => {
    const hook = () => {};
    const previous = configure({ onLeak: hook });
    expect(getConfig().onLeak).toBe(hook);
    expect(previous.onLeak).toBeUndefined();
    configure(previous);
    expect(getConfig().onLeak).toBeUndefined();
  });

  it('unwinds nested changes in reverse order', () => {
    const first = configure({ leaks: 'throw' });
    const second = configure({ leaks: 'reclaim' });
    expect(getConfig().leaks).toBe('reclaim');
    configure(second);
    expect(getConfig().leaks).toBe('throw');
    configure(first);
    expect(getConfig().leaks).toBe('warn');
  });

  it('keeps omitted and undefined fields as they were', () => {
    configure({ leaks: 'throw', staleScopeMs: 123 });
    // `undefined` is not allowed by the type (exactOptionalPropertyTypes) but may come from JavaScript.
    configure({ leaks: undefined, sites: 'off' } as unknown as Config);
    expect(getConfig()).toMatchObject({ leaks: 'throw', staleScopeMs: 123, sites: 'off' });
  });

  it('applies the settings: leaks "throw" makes a leaking scope\u2019s close reject with a LeakError, and restoring undoes it', async () => {
    allowLeaks();
    const previous = configure({ leaks: 'throw' });
    const error = await closeWithALeak();
    expect(error).toBeInstanceOf(LeakError);
    configure(previous);
    configure({ leaks: 'reclaim' });
    expect(await closeWithALeak()).toBeUndefined();
  });

  it('accepts boundary values', () => {
    configure({ sampleRate: 0, staleScopeMs: 0, disposeTimeoutMs: 2 ** 31 - 1, growthSamples: 1 });
    expect(getConfig()).toMatchObject({ sampleRate: 0, staleScopeMs: 0, disposeTimeoutMs: 2 ** 31 - 1, growthSamples: 1 });
    configure({ sampleRate: 1 });
    expect(getConfig().sampleRate).toBe(1);
  });
});

describe('configure() rejects bad values with a TypeError naming the option, and changes nothing', () => {
  const cases: [keyof Config, unknown][] = [
    ['leaks', 'loud'],
    ['leaks', 1],
    ['sites', 'sometimes'],
    ['sampleRate', 1.5],
    ['sampleRate', -0.1],
    ['sampleRate', '0.5'],
    ['staleScopeMs', -1],
    ['staleScopeMs', 1.5],
    ['leakThresholdMs', 'x'],
    ['disposeTimeoutMs', 2 ** 31],
    ['disposeTimeoutMs', Number.NaN],
    ['growthIntervalMs', Infinity],
    ['growthSamples', 0],
    ['growthSamples', 2.5],
    ['warningThrottleMs', -5],
    ['onLeak', 'console.log'],
    ['onLeak', null],
  ];

  it.each(cases)('%s = %s', (key, value) => {
    const before = getConfig();
    const error = thrownBy(() => configure({ [key]: value } as Config));
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toMatch(new RegExp(`^TypeError: configure\\(\\): option '${key}' must be `));
    expect(getConfig()).toEqual(before);
  });

  it.each([
    ['a bigint', 10n, 'got 10n (a bigint)'],
    ['an array', [5], 'got an array'],
    ['a plain object', { ms: 5 }, 'got an object'],
    ['an object with no prototype', Object.create(null) as object, 'got an object'],
    ['a class instance', new Map(), 'got a Map'],
    ['an instance whose name starts with a vowel', new Error('x'), 'got an Error'],
    ['a symbol', Symbol('ms'), 'got Symbol(ms) (a symbol)'],
  ])('names %s as what it is in the message', (_what, value, got) => {
    expect(() => configure({ staleScopeMs: value } as unknown as Config)).toThrow(
      new TypeError(`configure(): option 'staleScopeMs' must be a whole number of milliseconds from 0 to 2147483647, ${got}`),
    );
  });

  it('applies none of the valid values given alongside a bad one', () => {
    const before = getConfig();
    expect(() => configure({ leaks: 'throw', staleScopeMs: 5, growthSamples: -1 })).toThrow(/option 'growthSamples'/);
    expect(getConfig()).toEqual(before);
  });

  it('rejects an unknown key, listing the known ones', () => {
    const before = getConfig();
    const error = thrownBy(() => configure({ leak: 'throw' } as unknown as Config));
    expect(error).toBeInstanceOf(TypeError);
    expect(String(error)).toContain("unknown option 'leak'");
    expect(String(error)).toContain('leaks');
    expect(getConfig()).toEqual(before);
  });

  it.each([
    ['null', null],
    ['a string', 'throw'],
    ['an array', ['leaks']],
  ])('rejects %s as options', (_name, options) => {
    const before = getConfig();
    expect(() => configure(options as unknown as Config)).toThrow(TypeError);
    expect(() => configure(options as unknown as Config)).toThrow(/configure\(\): options must be an object/);
    expect(getConfig()).toEqual(before);
  });
});

describe('resetConfig()', () => {
  it('restores every setting to its default', () => {
    configure({
      leaks: 'throw',
      sites: 'off',
      sampleRate: 0.5,
      staleScopeMs: 1,
      leakThresholdMs: 2,
      disposeTimeoutMs: 3,
      growthIntervalMs: 4,
      growthSamples: 6,
      warningThrottleMs: 7,
      onLeak: () => {},
    });
    resetConfig();
    expect(getConfig()).toEqual(DEFAULTS);
  });
});

describe('getConfig()', () => {
  it('returns a copy: changing it does not change the settings', () => {
    const copy = getConfig();
    expect(getConfig()).not.toBe(copy);
    copy.leaks = 'throw';
    copy.disposeTimeoutMs = 1;
    expect(getConfig().leaks).toBe('warn');
    expect(getConfig().disposeTimeoutMs).toBe(10_000);
  });

  it('returns every setting, the onLeak key included', () => {
    expect(Object.keys(getConfig()).sort()).toEqual(Object.keys(DEFAULTS).sort());
  });
});

describe('defaults depend on NODE_ENV', () => {
  const original = process.env['NODE_ENV'];
  afterEach(() => {
    if (original === undefined) delete process.env['NODE_ENV'];
    else process.env['NODE_ENV'] = original;
    resetConfig();
  });

  it('defaults sites to "sampled" when NODE_ENV is production', () => {
    process.env['NODE_ENV'] = 'production';
    resetConfig();
    expect(getConfig().sites).toBe('sampled');
  });

  it('defaults sites to "always" otherwise', () => {
    process.env['NODE_ENV'] = 'development';
    resetConfig();
    expect(getConfig().sites).toBe('always');
    delete process.env['NODE_ENV'];
    resetConfig();
    expect(getConfig().sites).toBe('always');
  });
});
