/**
 * inspect(): a JSON-serialisable snapshot of open scopes (oldest first), outstanding leases grouped
 * by kind and site, and growth suspects.
 */
import { describe, expect, it } from 'vitest';
import { configure, inspect, openScope, track, type InspectOptions, type Lease } from '../../src/index.js';
import { sweep } from '../../src/registry/sweep.js';
import { sleep, useCleanCustodian, sitesIn, busyWait } from '../helpers.js';

useCleanCustodian({ leaks: 'reclaim' });

const siteOf = sitesIn(import.meta.url);

const noop = () => {};

/** User code that acquires a connection: every lease it makes has this line as its site. */
function acquire(kind: string): Lease<string> {
  return track('value', { release: noop, kind }); // site:acquire
}

describe('inspect() returns JSON-serialisable data', () => {
  it('survives a JSON round trip unchanged, with scopes, leases and suspects present', async () => {
    configure({ growthIntervalMs: 1, growthSamples: 1 });
    const scope = openScope({ name: 'json' });
    const child = scope.fork(); // no name, so some fields are undefined
    const scoped = scope.run(() => acquire('db'));
    const unscoped = acquire('db');
    // Two samples with a rise in between make a growth suspect (synchronously, so the timer cannot interfere).
    busyWait(2);
    sweep();
    const more = acquire('db');
    busyWait(2);
    sweep();
    const snapshot = inspect();
    expect(snapshot.scopes.open).toBe(2);
    expect(snapshot.leases.outstanding).toBe(3);
    expect(snapshot.suspects).toEqual([{ kind: 'db', site: siteOf('acquire', 'track'), count: 3, growth: 1 }]);
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot);
    expect(Date.parse(snapshot.takenAt)).not.toBeNaN();
    expect(new Date(snapshot.takenAt).toISOString()).toBe(snapshot.takenAt);
    await more.release();
    await unscoped.release();
    await scoped.release();
    await child.close();
    await scope.close();
  });

  it('reports nothing open when nothing is', () => {
    const snapshot = inspect();
    expect(snapshot.scopes).toEqual({ open: 0, oldest: [], omitted: 0 });
    expect(snapshot.leases).toEqual({ outstanding: 0, unscoped: 0, bySite: [], omitted: 0 });
  });
});

describe('scopes.open counts every open scope, nested ones included', () => {
  it('counts a root, its child and grandchild, with parent ids, names, sites and lease counts', async () => {
    const root = openScope({ name: 'root' }); // site:root
    const child = root.fork({ name: 'child' });
    const grandchild = child.fork({ name: 'grandchild' });
    const leases = [grandchild.track(1, { release: noop }), grandchild.track(2, { release: noop })];
    const snapshot = inspect();
    expect(snapshot.scopes.open).toBe(3);
    const byName = new Map(snapshot.scopes.oldest.map((s) => [s.name, s]));
    expect(byName.get('root')).toMatchObject({
      id: root.id,
      parentId: undefined,
      state: 'open',
      site: siteOf('root', 'openScope'),
      leases: 0,
      stale: false,
    });
    expect(byName.get('child')).toMatchObject({ id: child.id, parentId: root.id, leases: 0 });
    expect(byName.get('grandchild')).toMatchObject({ id: grandchild.id, parentId: child.id, leases: 2 });
    for (const lease of leases) await lease.release();
    await child.close();
    expect(inspect().scopes.open).toBe(1);
    await root.close();
    expect(inspect().scopes.open).toBe(0);
  });

  it('marks a scope reported stale with stale: true', async () => {
    // staleScopeMs 20: the sweep period, taken off the coarse age, is 10 ms, so a scope is stale once
    // really open 30 ms. Wait twice that.
    configure({ staleScopeMs: 20 });
    const scope = openScope({ name: 'old' });
    expect(inspect().scopes.oldest).toMatchObject([{ name: 'old', stale: false }]);
    await sleep(60);
    sweep();
    expect(inspect().scopes.oldest).toMatchObject([{ name: 'old', stale: true }]);
    await scope.close();
  });
});

describe('scopes.oldest is sorted by age, oldest first', () => {
  it('lists scopes opened one after another oldest first, with decreasing ages', async () => {
    // sweep() refreshes the clock scopes take their open time from, so each one gets a distinct time.
    const first = openScope({ name: 'first' });
    await sleep(15);
    sweep();
    const second = openScope({ name: 'second' });
    await sleep(15);
    sweep();
    first.fork({ name: 'third' });
    const { oldest } = inspect().scopes;
    expect(oldest.map((s) => s.name)).toEqual(['first', 'second', 'third']);
    const [a, b, c] = oldest.map((s) => s.ageMs);
    expect(a).toBeGreaterThan(b ?? Infinity);
    expect(b).toBeGreaterThan(c ?? Infinity);
    expect(a).toBeGreaterThanOrEqual(25);
    await second.close();
    await first.close();
  });

  it('limits the list to maxScopes, keeping the oldest, while open still counts all', async () => {
    const scopes = [];
    for (const name of ['a', 'b', 'c']) {
      scopes.push(openScope({ name }));
      await sleep(10);
      sweep();
    }
    const limited = inspect({ maxScopes: 2 });
    expect(limited.scopes.open).toBe(3);
    expect(limited.scopes.oldest.map((s) => s.name)).toEqual(['a', 'b']);
    expect(inspect({ maxScopes: 0 }).scopes.oldest).toEqual([]);
    expect(inspect().scopes.oldest).toHaveLength(3);
    for (const scope of scopes) await scope.close();
  });

  it.each([
    [-1, '-1'],
    [1.5, '1.5'],
    [Number.NaN, 'NaN'],
    [Infinity, 'Infinity'],
    ['3' as unknown as number, '"3"'],
    [null as unknown as number, 'null'],
  ])('rejects maxScopes %s with a TypeError naming the option and the value (%s)', (maxScopes, shown) => {
    const options: InspectOptions = { maxScopes };
    expect(() => inspect(options)).toThrow(new TypeError(`inspect(): option 'maxScopes' must be a whole number from 0, got ${shown}`));
  });

  it('rejects an unknown option, naming the known ones', () => {
    const options = { maxScope: 2 } as unknown as InspectOptions;
    expect(() => inspect(options)).toThrow(new TypeError("inspect(): unknown option 'maxScope'; known options are maxScopes, maxLeases"));
    expect(() => inspect({ foo: 1 } as unknown as InspectOptions)).toThrow(
      new TypeError("inspect(): unknown option 'foo'; known options are maxScopes, maxLeases"),
    );
  });

  it('rejects options that are not an object', () => {
    expect(() => inspect(null as unknown as InspectOptions)).toThrow(new TypeError('inspect(): options must be an object, got null'));
    expect(() => inspect(5 as unknown as InspectOptions)).toThrow(new TypeError('inspect(): options must be an object, got 5'));
  });
});

describe('leases.bySite groups outstanding leases by kind and site, with counts and unscoped counts', () => {
  it('groups scoped and unscoped leases of one kind and site together, largest group first', async () => {
    const scope = openScope();
    const scoped = scope.run(() => [acquire('db'), acquire('db'), acquire('cache')]);
    const loose = acquire('db');
    const other = track('x', { release: noop, kind: 'db' }); // site:other
    await sleep(5);
    const snapshot = inspect();
    const site = siteOf('acquire', 'track');
    expect(snapshot.leases.outstanding).toBe(5);
    expect(snapshot.leases.unscoped).toBe(2);
    expect(snapshot.leases.bySite.map(({ oldestMs: _, ...rest }) => rest)).toEqual([
      { kind: 'db', site, count: 3, unscoped: 1 },
      { kind: 'cache', site, count: 1, unscoped: 0 },
      { kind: 'db', site: siteOf('other', 'track'), count: 1, unscoped: 1 },
    ]);
    const [db] = snapshot.leases.bySite;
    expect(db?.oldestMs).toBeGreaterThanOrEqual(3);
    await loose.release();
    await other.release();
    for (const lease of scoped) await lease.release();
    await scope.close();
    expect(inspect().leases).toEqual({ outstanding: 0, unscoped: 0, bySite: [], omitted: 0 });
  });

  it('drops a lease from the counts once it is released', async () => {
    const a = acquire('db');
    const b = acquire('db');
    expect(inspect().leases.bySite.map((s) => s.count)).toEqual([2]);
    await a.release();
    expect(inspect().leases.bySite.map((s) => [s.count, s.unscoped])).toEqual([[1, 1]]);
    await b.release();
    expect(inspect().leases.bySite).toEqual([]);
  });

  it('groups leases with no recorded site under site undefined', async () => {
    configure({ sites: 'off' });
    const a = acquire('db');
    const b = track(1, { release: noop, kind: 'db' });
    expect(inspect().leases.bySite.map(({ oldestMs: _, ...rest }) => rest)).toEqual([
      { kind: 'db', site: undefined, count: 2, unscoped: 2 },
    ]);
    await a.release();
    await b.release();
  });
});
