/**
 * The verdict on synthetic curves (no process memory involved): a line is leaking at its slope, a
 * flat series with noise is stable, a cache that fills and stops is bounded, a curve that keeps
 * slowing down (logarithmic) is bounded, a cache plus a leak is leaking; and the pieces the CLI
 * and the server mode stand on (checkpoints, smaps_rollup, loopback URLs, formatting).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatBytes, formatRate } from '../../adapters/soak/report.js';
import { loopbackUrl } from '../../adapters/soak/server.js';
import { parseRollup, readResident } from '../../adapters/soak/smaps.js';
import { geometricCheckpoints, judge, type Floor } from '../../adapters/soak/verdict.js';

const floor: Floor = { bytesPerIteration: 1, bytes: 256 * 1024 };
const xsFor = (n: number) => [0, ...geometricCheckpoints(n, 11)];
/** Deterministic noise in [-amplitude, amplitude] from a seed (fast-check gives the seed). */
const noise = (seed: number, amplitude: number) => (i: number) => ((Math.sin(seed * 1000 + i * 12.9898) * 43758.5453) % 1) * amplitude;

describe('judge(): the verdict on a curve', () => {
  it('a straight line with noise is leaking, at its slope (±10 %)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 64, max: 10_000 }),
        fc.integer({ min: 20_000, max: 1_000_000 }),
        fc.integer(),
        fc.integer({ min: 0, max: 16 * 1024 }),
        (slope, n, seed, amplitude) => {
          const xs = xsFor(n);
          const jitter = noise(seed, amplitude);
          const j = judge(
            xs,
            xs.map((x, i) => 50e6 + slope * x + jitter(i)),
            floor,
          );
          expect(j.verdict, j.reason).toBe('leaking');
          expect(Math.abs(j.late.slope - slope)).toBeLessThan(slope * 0.1);
          expect(j.late.low).toBeLessThanOrEqual(j.late.slope);
          expect(j.late.high).toBeGreaterThanOrEqual(j.late.slope);
          expect(Math.abs(j.lateFrom - n / 10)).toBeLessThanOrEqual(0.5);
        },
      ),
    );
  });

  it('a flat series with noise below the floor is stable', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1000, max: 1_000_000 }),
        fc.integer(),
        fc.integer({ min: 0, max: 100 * 1024 }),
        (n, seed, amplitude) => {
          const xs = xsFor(n);
          const jitter = noise(seed, amplitude);
          expect(
            judge(
              xs,
              xs.map((_, i) => 50e6 + jitter(i)),
              floor,
            ).verdict,
          ).toBe('stable');
        },
      ),
    );
  });

  it('a cache that fills within the first decade and stops is bounded', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1024, max: 4096 }),
        fc.integer({ min: 50_000, max: 1_000_000 }),
        fc.double({ min: 0.02, max: 0.05, noNaN: true }),
        fc.integer(),
        (entry, n, fill, seed) => {
          const xs = xsFor(n);
          const jitter = noise(seed, 16 * 1024);
          const j = judge(
            xs,
            xs.map((x, i) => 50e6 + entry * Math.min(x, fill * n) + jitter(i)),
            floor,
          );
          expect(j.verdict, j.reason).toBe('bounded');
        },
      ),
    );
  });

  it('growth that keeps slowing down (logarithmic: a table that doubles) is bounded, however large', () => {
    const xs = xsFor(100_000);
    const j = judge(
      xs,
      xs.map((x) => 50e6 + 4e6 * Math.log1p(x / 100)),
      floor,
    );
    expect(j.verdict, j.reason).toBe('bounded');
    expect(j.reason).toMatch(/growth is slowing down/);
  });

  it('a cache that filled early plus a leak is leaking, at the leak rate', () => {
    const xs = xsFor(100_000);
    const j = judge(
      xs,
      xs.map((x) => 50e6 + 64 * x + 1024 * Math.min(x, 5000)),
      floor,
    );
    expect(j.verdict, j.reason).toBe('leaking');
    expect(j.late.slope).toBeCloseTo(64, 0);
  });

  it('growth below the noise floor is not growth, however steady', () => {
    const xs = xsFor(10_000);
    expect(
      judge(
        xs,
        xs.map((x) => 50e6 + 20 * x),
        floor,
      ).verdict,
    ).toBe('stable'); // 200 KB in all
    expect(
      judge(
        xs,
        xs.map((x) => 50e6 + 20 * x),
        { bytesPerIteration: 1, bytes: 64 * 1024 },
      ).verdict,
    ).toBe('leaking');
    expect(
      judge(
        xs,
        xs.map((x) => 50e6 + 20 * x),
        { bytesPerIteration: 32, bytes: 0 },
      ).verdict,
    ).toBe('stable');
  });
});

describe('geometricCheckpoints()', () => {
  it('ends at iterations, ascends, spans two decades, and has iterations/10 among 11', () => {
    expect(geometricCheckpoints(100_000, 11)).toEqual([1000, 1585, 2512, 3981, 6310, 10000, 15849, 25119, 39811, 63096, 100000]);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 2, max: 30 }), (n, count) => {
        const marks = geometricCheckpoints(n, count);
        expect(marks[marks.length - 1]).toBe(n);
        for (let i = 1; i < marks.length; i++) expect(marks[i]).toBeGreaterThan(marks[i - 1] as number);
        expect(marks.length).toBeLessThanOrEqual(count + 1);
      }),
    );
  });
});

describe('smaps_rollup', () => {
  it('parses RSS, PSS and USS (private clean + dirty + huge pages) in bytes', () => {
    const text = [
      '5639d173f000-7ffdf3911000 ---p 00000000 00:00 0                          [rollup]',
      'Rss:                1692 kB',
      'Pss:                 248 kB',
      'Shared_Clean:       1540 kB',
      'Private_Clean:        40 kB',
      'Private_Dirty:       112 kB',
      'Private_Hugetlb:       8 kB',
    ].join('\n');
    expect(parseRollup(text)).toEqual({ rss: 1692 * 1024, pss: 248 * 1024, uss: 160 * 1024 });
    expect(parseRollup('Rss: 10 kB\n')).toBeUndefined();
  });

  it('says why when a process cannot be read', () => {
    expect(readResident(4_194_000)).toMatch(/^\/proc\/4194000\/smaps_rollup cannot be read \(ENOENT\)$/);
    if (process.platform === 'linux') expect(readResident('self')).toMatchObject({ rss: expect.any(Number) as number });
  });
});

describe('loopbackUrl()', () => {
  it('takes http:// on 127.0.0.0/8, ::1 and localhost only', () => {
    for (const ok of ['http://127.0.0.1:8080/a', 'http://127.1.2.3/', 'http://[::1]:3000/x', 'http://localhost/'])
      expect(loopbackUrl(ok)).toBeInstanceOf(URL);
    expect(loopbackUrl('http://10.0.0.1/')).toMatch(/10\.0\.0\.1 is not a loopback address/);
    expect(loopbackUrl('http://127.0.0.1.evil.com/')).toMatch(/not a loopback address/);
    expect(loopbackUrl('https://127.0.0.1/')).toMatch(/only http:\/\/ is supported/);
    expect(loopbackUrl('nope')).toMatch(/not a URL/);
  });
});

describe('formatting', () => {
  it('bytes and rates', () => {
    expect([512, 181 * 1024, 12.34 * 1024 * 1024, -2048].map(formatBytes)).toEqual(['512 B', '181 KiB', '12.3 MiB', '-2.0 KiB']);
    expect([1.94, 64.04, 1024.4, -3].map((b) => formatRate(b))).toEqual([
      '+1.94 B/iteration',
      '+64.0 B/iteration',
      '+1024 B/iteration',
      '-3.00 B/iteration',
    ]);
  });
});
