/**
 * custodian/soak: does memory grow with every task, by how much, and which function holds on to
 * it. `soak(task, options)` runs a task many times, each in its own scope, samples memory after a
 * full GC at checkpoints and fits bytes per iteration; the `custodian soak` CLI draws it. See
 * docs/memory.md.
 */
export { soak, type SoakOptions, type SoakTask } from './soak.js';
export { soakServer, type SoakServerOptions } from './server.js';
export { renderChart } from './chart.js';
export type { GrowingSite, LeaseGrowthSite, Rate, SeriesName, SeriesReport, SoakResult, SoakSample } from './result.js';
export type { Verdict } from './verdict.js';
export { formatReport } from './report.js';
