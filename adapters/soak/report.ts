/**
 * A soak result as text for a terminal or a CI log: the checkpoint table, each series' rate with
 * its interval, the verdict, and the growing sites. No colours, no control codes.
 */
import { SERIES, type GrowingSite, type LeaseGrowthSite, type SoakResult } from './result.js';

/** Bytes as people read them: `512 B`, `181 KiB`, `12.3 MiB`. */
export function formatBytes(bytes: number): string {
  const sign = bytes < 0 ? '-' : '';
  const b = Math.abs(bytes);
  if (b < 1024) return `${sign}${Math.round(b)} B`;
  if (b < 1024 * 1024) return `${sign}${(b / 1024).toFixed(b < 10 * 1024 ? 1 : 0)} KiB`;
  if (b < 1024 ** 3) return `${sign}${(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${sign}${(b / 1024 ** 3).toFixed(2)} GiB`;
}

/** A rate in bytes per iteration, to a precision that fits its size. */
export function formatRate(bytes: number, per = 'iteration'): string {
  const a = Math.abs(bytes);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : 2;
  return `${bytes >= 0 ? '+' : ''}${bytes.toFixed(digits)} B/${per}`;
}

const pad = (text: string, width: number): string => text.padStart(width);

/** One growing allocation site: `src/cache.ts:41:12 (remember) => growth times 7, retained +181 KiB (+1.9 B/iteration)`. */
export function formatSite(s: GrowingSite): string {
  return `${s.site}${s.functionName === '' ? '' : ` (${s.functionName})`} => growth times ${s.growthTimes}, retained +${formatBytes(s.retainedGrowth)} (${formatRate(s.bytesPerIteration)})`;
}

function formatLeaseSite(s: LeaseGrowthSite): string {
  return `${s.site ?? '(site not recorded)'} ${s.kind} => growth times ${s.growthTimes}, +${s.growth} outstanding (${s.outstanding} now)`;
}

/** The whole report, as lines joined by newlines. */
export function formatReport(result: SoakResult, options: { maxSites?: number } = {}): string {
  const max = options.maxSites ?? 10;
  const shown = SERIES.filter((name) => result.series.find((s) => s.name === name)?.available === true);
  const unit = result.target.kind === 'url' ? 'requests' : 'iteration';
  const per = result.target.kind === 'url' ? 'request' : 'iteration';
  const rateOf = (bytes: number) => formatRate(bytes, per);
  const header = [pad(unit, 10), pad('ms', 8), ...shown.map((n) => pad(n, 12))].join(' ');
  const lines = [header];
  for (const s of result.samples) {
    lines.push(
      [pad(String(s.iteration), 10), pad(s.elapsedMs.toFixed(0), 8), ...shown.map((n) => pad(formatBytes(s.bytes[n] ?? 0), 12))].join(' '),
    );
  }
  lines.push('');
  lines.push(`growth per ${per}, last decade (95 % interval)   [whole run]`);
  for (const s of result.series) {
    if (!s.available || s.late === null || s.whole === null) {
      lines.push(`  ${s.name.padEnd(12)} not available: ${s.reason}`);
      continue;
    }
    const ci = `[${rateOf(s.late.low).replace(` B/${per}`, '')}, ${rateOf(s.late.high).replace(` B/${per}`, '')}]`;
    lines.push(
      `  ${s.name.padEnd(12)} ${rateOf(s.late.bytesPerIteration).padStart(20)} ${ci.padEnd(22)} [${rateOf(s.whole.bytesPerIteration)}]  ${s.verdict}${s.decisive ? ' *' : ''}`,
    );
  }
  lines.push('  (* decides the verdict)');
  lines.push('');
  const r = result.rate;
  lines.push(
    `verdict: ${result.verdict.toUpperCase()} — ${result.reason} (95 % interval ${rateOf(r.low)} to ${rateOf(r.high)}, ${result.iterations} ${unit === 'requests' ? 'requests' : 'iterations'} after ${result.warmup} warm-up, concurrency ${result.concurrency}, ${(result.durationMs / 1000).toFixed(1)} s)`,
  );
  if (result.target.kind === 'function') {
    lines.push('');
    if (!result.profiler.enabled) lines.push(`growing allocation sites: not recorded (${result.profiler.note ?? 'profiler off'})`);
    else if (result.sites.length === 0) lines.push('growing allocation sites: none');
    else {
      lines.push(
        `growing allocation sites (sampled every ${formatBytes(result.profiler.samplingInterval)}; the site is where the allocating function starts):`,
      );
      for (const s of result.sites.slice(0, max)) lines.push(`  ${formatSite(s)}`);
      if (result.sites.length > max) lines.push(`  ... and ${result.sites.length - max} more (see --json)`);
    }
    if (result.leaseSites.length > 0) {
      lines.push('custodian leases still held, by acquisition site, that grew:');
      for (const s of result.leaseSites.slice(0, max)) lines.push(`  ${formatLeaseSite(s)}`);
    }
  }
  for (const note of result.notes) lines.push(`note: ${note}`);
  return lines.join('\n');
}
