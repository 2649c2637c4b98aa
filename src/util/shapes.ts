/**
 * Keeps one instance of each of the library's short-lived classes alive for the life of the process.
 *
 * V8 compiles the hot paths against the object shapes (maps) of the classes they use, and holds
 * those maps only weakly: a class's map lives as long as one of its instances does. custodian's
 * scopes, closes and cleanups live for one task, so when a major GC runs between two tasks (or
 * with every task awaiting elsewhere) it finds none, drops their maps, and throws away the
 * optimized code of every function compiled against them ("embedded weak objects cleared" in
 * `--trace-deopt`). Measured on Node 24: `withScope` + one `defer` took 4.4 µs per call right after
 * such a GC, against 0.45 µs, and about 50,000 calls to get back (test/shapes.test.ts).
 * A service has a major GC every few seconds; each one cost it that again.
 *
 * An instance kept here holds its map, so the code stays. Each is built the way the library
 * builds its own (same fields, same kinds of values), so that it holds the map real instances
 * have, and it is never used: a few hundred bytes for the process.
 */

const kept: object[] = [];

/** Keeps `instance` alive for good (see above); returns it. */
export function keepShape<T extends object>(instance: T): T {
  kept.push(instance);
  return instance;
}
