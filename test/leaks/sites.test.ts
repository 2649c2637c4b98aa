/**
 * Sites: where a lease or scope was acquired, as the first stack frame outside custodian's own
 * folders and node_modules (`file:line:column`, relative to the working directory). Recording is
 * `always`, `sampled` (a `sampleRate` share) or `off`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleGap } from '../../src/report/sites.js';
import {
  configure,
  createPool,
  currentScope,
  openScope,
  track,
  withScope,
  type Lease,
  type LeakReport,
  type TrackOptions,
} from '../../src/index.js';
import { allowLeaksInEveryTest, collectReports, useCleanCustodian, sitesIn } from '../helpers.js';

useCleanCustodian({ leaks: 'reclaim' });
allowLeaksInEveryTest();

const siteOf = sitesIn(import.meta.url);

const noop = () => {};

/** What reports print in place of a site, by `sites` setting. */
const SITES_OFF = '(site not recorded: sites are off; configure({ sites: "always" }) to record them)';
const NOT_SAMPLED = '(site not recorded: only a sample is; configure({ sites: "always" }) to record every one)';
const NO_USER_FRAME =
  '(site unknown: no recorded frame is outside Node, node_modules and custodian; raise Error.stackTraceLimit (now 10) to record more frames, or pass your wrapper function as `boundary` so that the site is the line that called it)';

/** User code that wraps acquisition: the site is this line, not the caller's. */
function openConnection(): Lease<string> {
  return track('conn', { release: noop, kind: 'connection' }); // site:helper
}

function outerHelper(): Lease<string> {
  return openConnection(); // the innermost user frame wins
}

describe('with sites "always", leases and scopes point at the line in the test file that acquired them', () => {
  it('sets lease.site for scope.track()', async () => {
    const scope = openScope();
    const lease = scope.track(1, { release: noop }); // site:scope-track
    expect(lease.site).toBe(siteOf('scope-track', 'track'));
    await scope.close();
  });

  it('sets lease.site for track() inside withScope', async () => {
    await withScope(async () => {
      const lease = track(1, { release: noop }); // site:ctx-track
      expect(lease.site).toBe(siteOf('ctx-track', 'track'));
      await lease.release();
    });
  });

  it('sets lease.site for an unscoped track()', async () => {
    const lease = track(1, { release: noop }); // site:unscoped
    expect(lease.site).toBe(siteOf('unscoped', 'track'));
    await lease.release();
  });

  it('sets scope.site for openScope(), withScope() and scope.fork()', async () => {
    const root = openScope(); // site:open
    const child = root.fork(); // site:fork
    let inner: string | undefined;
    await root.run(() => withScope((s) => (inner = s.site))); // site:with
    expect(root.site).toBe(siteOf('open', 'openScope'));
    expect(child.site).toBe(siteOf('fork', 'fork'));
    expect(inner).toBe(siteOf('with', 'withScope'));
    await root.close();
  });

  it('puts the same site in the leak report, for the lease and the scope', async () => {
    const { reports, stop } = collectReports();
    const task = () => void track(1, { release: noop, kind: 'socket' }); // site:report-lease
    await withScope(task); // site:report-scope
    stop();
    expect(reports).toMatchObject([
      { type: 'unreleased', scope: { site: siteOf('report-scope', 'withScope') }, resources: [{ site: siteOf('report-lease', 'track') }] },
    ]);
    expect(reports[0]?.message).toContain(`acquired at ${siteOf('report-lease', 'track')}  held`);
  });
});

describe('a site is the first frame outside custodian and node_modules: a helper in user code is the site', () => {
  it('points at the helper that called track(), not at the helper caller', async () => {
    const lease = outerHelper();
    expect(lease.site).toBe(siteOf('helper', 'track'));
    await lease.release();
  });

  it('points at the helper for leases acquired in a scope too, and reports it', async () => {
    const { reports, stop } = collectReports();
    await withScope(() => {
      openConnection();
      openConnection();
    });
    stop();
    const site = siteOf('helper', 'track');
    expect(reports[0]?.type === 'unreleased' && reports[0].resources.map((r) => r.site)).toEqual([site, site]);
    expect(reports[0]?.message).toContain(`  connection  x2  acquired at ${site}  held`);
  });

  describe('a library in node_modules is skipped', () => {
    let dir = '';
    let acquire: ((trackFn: typeof track, options: TrackOptions<string>) => Lease<string>) | undefined;

    beforeAll(async () => {
      // A tiny third-party pool that calls custodian's track() on the user's behalf.
      dir = mkdtempSync(join(tmpdir(), 'custodian-sites-'));
      const lib = join(dir, 'node_modules', 'fake-pool');
      mkdirSync(lib, { recursive: true });
      writeFileSync(
        join(lib, 'index.mjs'),
        'export function acquire(trackFn, options) {\n  return inner(trackFn, options);\n}\nfunction inner(trackFn, options) {\n  return trackFn("pooled", options);\n}\n',
      );
      const mod = (await import(/* @vite-ignore */ pathToFileURL(join(lib, 'index.mjs')).href)) as { acquire: typeof acquire };
      acquire = mod.acquire;
    });

    afterAll(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it('points at the user line that called into the library', async () => {
      if (acquire === undefined) throw new Error('fake library not loaded');
      const lease = acquire(track, { release: noop, kind: 'pooled' }); // site:via-lib
      expect(lease.site).toBe(siteOf('via-lib', 'acquire'));
      await lease.release();
    });

    it('leaves the site undefined when every recorded frame is in the library, and says why in the report', async () => {
      const libraryAcquire = acquire;
      if (libraryAcquire === undefined) throw new Error('fake library not loaded');
      const { reports, stop } = collectReports();
      const limit = Error.stackTraceLimit;
      let site: string | null | undefined = null;
      try {
        await withScope(() => {
          Error.stackTraceLimit = 2; // only the library's two frames are recorded
          try {
            site = libraryAcquire(track, { release: noop, kind: 'pooled' }).site;
          } finally {
            Error.stackTraceLimit = limit;
          }
        });
      } finally {
        Error.stackTraceLimit = limit;
        stop();
      }
      expect(site).toBeUndefined();
      expect(reports).toMatchObject([{ type: 'unreleased', resources: [{ kind: 'pooled', site: undefined }] }]);
      expect(reports[0]?.message.split('\n')[1]).toMatch(new RegExp(`^  pooled  x1  acquired at ${escape(NO_USER_FRAME)}  held \\d+ ms$`));
    });
  });
});

describe('a wrapper can say "report my caller" with `boundary`', () => {
  const pool = createPool({ create: () => ({ id: 1 }), destroy: noop }, { name: 'wrapped' });
  afterAll(() => pool.close());

  /** A user's own helper, the usual shape: without `boundary`, this line would be every report's site. */
  function getConnection() {
    return pool.acquire({ boundary: getConnection });
  }

  function openFile(): Lease<string> {
    return track('fd', { release: noop, kind: 'file handle', boundary: openFile });
  }

  function inTask<R>(fn: () => R): Promise<Awaited<R>> {
    return withScope(fn, { name: 'job', boundary: inTask });
  }

  it('pool.acquire({ boundary }) names the line that called the wrapper', async () => {
    const lease = await getConnection(); // site:wrapped-acquire
    expect(lease.site).toBe(siteOf('wrapped-acquire', 'getConnection'));
    await lease.release();
  });

  it('track(value, { boundary }) and withScope(fn, { boundary }) do the same', async () => {
    const lease = openFile(); // site:wrapped-track
    expect(lease.site).toBe(siteOf('wrapped-track', 'openFile'));
    await lease.release();
    const site = await inTask(() => currentScope()?.site); // site:wrapped-scope
    expect(site).toBe(siteOf('wrapped-scope', 'inTask'));
  });

  it('finds the caller past a wrapper 20 frames deep, where the default 10 frames would end inside it', async () => {
    const deep = (n: number): Promise<Lease<{ id: number }>> => (n === 0 ? pool.acquire({ boundary: layered }) : deep(n - 1));
    function layered() {
      return deep(20);
    }
    const plain = (n: number): Promise<Lease<{ id: number }>> => (n === 0 ? pool.acquire() : plain(n - 1));
    const withBoundary = await layered(); // site:layered
    expect(withBoundary.site).toBe(siteOf('layered', 'layered'));
    await withBoundary.release();
    // Without it, the site is the wrapper's own line (the first frame outside custodian).
    const without = await plain(20);
    expect(without.site).toMatch(/^test\/leaks\/sites\.test\.ts:\d+:\d+$/);
    expect(without.site).not.toBe(siteOf('layered', 'layered'));
    await without.release();
  });

  it('a boundary that is not on the stack leaves the site unknown, and a non-function is a TypeError', async () => {
    const elsewhere = () => undefined;
    const lease = await pool.acquire({ boundary: elsewhere });
    expect(lease.site).toBeUndefined();
    await lease.release();
    await expect(pool.acquire({ boundary: 'getConnection' as unknown as () => unknown })).rejects.toThrow(
      new TypeError('pool.acquire(): option \'boundary\' must be a function, got "getConnection"'),
    );
    expect(() => track(1, { release: noop, boundary: 5 as unknown as () => unknown })).toThrow(
      new TypeError("track(): option 'boundary' must be a function, got 5"),
    );
  });
});

describe('with sites "off", nothing is recorded', () => {
  it('leaves lease.site and scope.site undefined', async () => {
    configure({ sites: 'off' });
    const scope = openScope();
    const lease = scope.track(1, { release: noop });
    const unscoped = track(2, { release: noop });
    expect(scope.site).toBeUndefined();
    expect(lease.site).toBeUndefined();
    expect(unscoped.site).toBeUndefined();
    await unscoped.release();
    await lease.release();
    await scope.close();
  });

  it('reports resources and scopes with site undefined', async () => {
    configure({ sites: 'off' });
    const { reports, stop } = collectReports();
    await withScope(() => void track(1, { release: noop, kind: 'socket' }));
    stop();
    expect(reports).toMatchObject([{ type: 'unreleased', scope: { site: undefined }, resources: [{ kind: 'socket', site: undefined }] }]);
    expect(reports[0]?.message.split('\n')[1]).toMatch(new RegExp(`^  socket  x1  acquired at ${escape(SITES_OFF)}  held \\d+ ms$`));
  });

  // A report line with no recorded site says why (unknownSite()): here, that sites are off and how to turn them on.
  it('prints a hint in the report that sites are off and how to turn them on', async () => {
    configure({ sites: 'off' });
    const { reports, stop } = collectReports();
    let scopeId = -1;
    await withScope((scope) => {
      scopeId = scope.id;
      track(1, { release: noop, kind: 'socket' });
    });
    stop();
    const report = reports[0] as LeakReport;
    expect(report.type === 'unreleased' && report.resources.map((r) => r.heldMs)).toEqual([expect.any(Number)]);
    const heldMs = report.type === 'unreleased' ? (report.resources[0]?.heldMs ?? -1) : -1;
    expect(report.message.split('\n')).toEqual([
      `scope #${scopeId} closed with 1 unreleased resource (reclaimed)`,
      `  socket  x1  acquired at (site not recorded: sites are off; configure({ sites: "always" }) to record them)  held ${Math.round(heldMs)} ms`,
      '  Release each one on every path (`await using lease = ...`, or lease.release() in a finally block), or let the scope own it with scope.use() / scope.adopt().',
    ]);
  });
});

describe('with sites "sampled", a sampleRate share of acquisitions is recorded', () => {
  it('records none with sampleRate 0', async () => {
    configure({ sites: 'sampled', sampleRate: 0 });
    const scope = openScope();
    const leases = Array.from({ length: 50 }, (_, i) => scope.track(i, { release: noop }));
    expect(scope.site).toBeUndefined();
    expect(leases.filter((l) => l.site !== undefined)).toEqual([]);
    await scope.close();
  });

  it('says in the report that only a sample of sites is recorded', async () => {
    configure({ sites: 'sampled', sampleRate: 0 });
    const { reports, stop } = collectReports();
    await withScope(() => void track(1, { release: noop, kind: 'socket' }));
    stop();
    expect(reports).toMatchObject([{ type: 'unreleased', resources: [{ kind: 'socket', site: undefined }] }]);
    expect(reports[0]?.message.split('\n')[1]).toMatch(new RegExp(`^  socket  x1  acquired at ${escape(NOT_SAMPLED)}  held \\d+ ms$`));
  });

  it('records every one with sampleRate 1', async () => {
    configure({ sites: 'sampled', sampleRate: 1 });
    const scope = openScope(); // site:sampled-scope
    const leases = Array.from({ length: 50 }, (_, i) => scope.track(i, { release: noop })); // site:sampled
    expect(scope.site).toBe(siteOf('sampled-scope', 'openScope'));
    expect(new Set(leases.map((l) => l.site))).toEqual(new Set([siteOf('sampled', 'track')]));
    await scope.close();
  });

  it('records roughly sampleRate of them in between', async () => {
    configure({ sites: 'sampled', sampleRate: 0.5 });
    const recorded = await recordedAmong(400);
    // Binomial(400, 0.5): mean 200, sd 10; 120..280 is 8 standard deviations.
    expect(recorded).toBeGreaterThan(120);
    expect(recorded).toBeLessThan(280);
  });

  it('records about 1 in 100 at the default sampleRate, as independent draws would', async () => {
    configure({ sites: 'sampled', sampleRate: 0.01 });
    const recorded = await recordedAmong(20_000);
    // Binomial(20000, 0.01): mean 200, sd 14; 110..290 is over 6 standard deviations.
    expect(recorded).toBeGreaterThan(110);
    expect(recorded).toBeLessThan(290);
  });

  it('follows a sampleRate change at once, whatever gap was drawn at the old rate', async () => {
    configure({ sites: 'sampled', sampleRate: 0 });
    const scope = openScope();
    scope.track(0, { release: noop }); // draws the gap at rate 0: never
    configure({ sampleRate: 1 });
    expect(scope.track(1, { release: noop }).site).toBeDefined();
    configure({ sampleRate: 0 });
    expect(Array.from({ length: 100 }, (_, i) => scope.track(i, { release: noop }).site).filter(Boolean)).toEqual([]);
    await scope.close();
  });

  it('draws gaps that are whole numbers of at least 1, with mean 1 / sampleRate', () => {
    expect(sampleGap(1)).toBe(1);
    expect(sampleGap(0)).toBe(Infinity);
    fc.assert(
      fc.property(fc.double({ min: 0.02, max: 0.95, noNaN: true }), (rate) => {
        const gaps = Array.from({ length: 4000 }, () => sampleGap(rate));
        expect(gaps.every((g) => Number.isInteger(g) && g >= 1)).toBe(true);
        // The mean of 4000 geometric draws is within 2 % of 1 / rate (one sd); 15 % is over 7 sd.
        const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
        expect(Math.abs(mean * rate - 1)).toBeLessThan(0.15);
      }),
      { numRuns: 50 },
    );
  });

  it('rejects a sampleRate outside 0..1', () => {
    expect(() => configure({ sampleRate: 1.5 })).toThrow(
      new TypeError("configure(): option 'sampleRate' must be a number from 0 to 1, got 1.5"),
    );
  });
});

/** Tracks `n` leases in a scope of their own and counts those whose site was recorded. */
async function recordedAmong(n: number): Promise<number> {
  const scope = openScope();
  const leases = Array.from({ length: n }, (_, i) => scope.track(i, { release: noop }));
  const recorded = leases.filter((l) => l.site !== undefined).length;
  await scope.close();
  return recorded;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
