/**
 * The real clock, taken when test mode loads: a test that leaves vi.useFakeTimers() on (which
 * fakes performance.now too) must not stop the check's wait from ending.
 */
export const now: () => number = performance.now.bind(performance);
