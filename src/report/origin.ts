/**
 * Internal: where test mode (`custodian/vitest`) learns which test acquired what. The core records
 * an `origin` on every lease and scope while a probe is set, and maps the objects of each report
 * back to the lease or scope they describe. With no probe set (production) this costs one load of
 * `origins.probe` per lease and scope, and nothing on report paths.
 */

/** Something that was acquired while an origin probe was set (not part of the public API). */
export interface Originated {
  readonly origin: object | undefined;
}

/** The probe: returns who is acquiring now (a test), or `undefined`. */
export const origins: { probe: (() => object | undefined) | undefined } = { probe: undefined };

/** The origin to record for something acquired now. */
export function currentOrigin(): object | undefined {
  const probe = origins.probe;
  return probe === undefined ? undefined : probe();
}

/**
 * For each `LeakedResource` and `ScopeInfo` built for a report while a probe is set, the
 * lease or scope it describes: how test mode attributes a report to the test that caused it, and
 * tells one lease it already blamed from another.
 */
export const subjects = new WeakMap<object, Originated>();

/** Records that `described` (part of a report) is about `subject`; returns `described`. */
export function recordSubject<T extends object>(described: T, subject: Originated): T {
  if (subject.origin !== undefined) subjects.set(described, subject);
  return described;
}
