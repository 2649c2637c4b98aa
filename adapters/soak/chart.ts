/**
 * The soak as an SVG chart: memory (MiB) against iterations, one line of points per series, and
 * the fitted line of the series that decided the verdict over the stretch it was fitted on. Plain
 * SVG 1.1 with no script and no external reference, readable in a browser, an image viewer or a
 * pull request.
 */
import { type SeriesName, type SoakResult } from './result.js';

const W = 860;
const H = 480;
const M = { left: 78, right: 180, top: 64, bottom: 58 };
const COLORS: Record<SeriesName, string> = {
  heapUsed: '#1f77b4',
  external: '#9467bd',
  arrayBuffers: '#8c564b',
  rss: '#d62728',
  pss: '#ff7f0e',
  uss: '#2ca02c',
};
const MiB = 1024 * 1024;

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c] as string);
}

/** 1, 2 or 5 times a power of ten: about `count` ticks between 0 and `max`. */
function ticks(min: number, max: number, count: number): number[] {
  const span = max - min || Math.abs(max) || 1;
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number): string => (Math.abs(v) >= 1e6 ? `${v / 1e6}M` : Math.abs(v) >= 1e3 ? `${v / 1e3}k` : String(v));

/** Which series a chart shows: the heap and RSS for a function (and external when it moved), RSS/PSS/USS for a server. */
function shownSeries(result: SoakResult): SeriesName[] {
  const available = (name: SeriesName) => result.series.find((s) => s.name === name)?.available === true;
  if (result.target.kind === 'url') return (['rss', 'pss', 'uss'] as const).filter(available);
  const out: SeriesName[] = ['heapUsed'];
  const ext = result.samples.map((s) => s.bytes.external ?? 0);
  if (Math.max(...ext) - Math.min(...ext) > MiB || result.decidedBy === 'external') out.push('external');
  if (available('rss')) out.push('rss');
  return out;
}

/** The chart of a soak result, as an SVG document. */
export function renderChart(result: SoakResult): string {
  const names = shownSeries(result);
  const xs = result.samples.map((s) => s.iteration);
  const values = result.samples.flatMap((s) => names.map((n) => (s.bytes[n] ?? 0) / MiB));
  const xMax = Math.max(...xs, 1);
  let yMin = Math.min(...values);
  let yMax = Math.max(...values);
  const pad = (yMax - yMin) * 0.08 || 1;
  yMin = Math.max(0, yMin - pad);
  yMax += pad;
  const xTicks = ticks(0, xMax, 6);
  const yTicks = ticks(yMin, yMax, 6);
  yMin = Math.min(yMin, yTicks[0] ?? yMin);
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const px = (x: number) => M.left + (x / xMax) * plotW;
  const py = (mib: number) => M.top + plotH - ((mib - yMin) / (yMax - yMin)) * plotH;
  const f = (n: number) => n.toFixed(1);
  const unit = result.target.kind === 'url' ? 'requests' : 'iterations';
  const subject = result.target.kind === 'url' ? `${result.target.url} (pid ${result.target.pid})` : result.target.name;
  const rate = result.rate.bytesPerIteration;
  const per = unit === 'requests' ? 'request' : 'iteration';
  const short = unit === 'requests' ? 'req' : 'it';
  const digits = (v: number) => v.toFixed(Math.abs(v) >= 100 ? 0 : 1);
  const title = `${result.verdict.toUpperCase()}: ${result.decidedBy} ${rate >= 0 ? '+' : ''}${digits(rate)} B/${per} over the last decade (95 % interval ${digits(result.rate.low)} to ${digits(result.rate.high)})`;

  const out: string[] = [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(`${subject}: ${title}`)}</title>`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${M.left}" y="22" font-size="15" font-weight="bold">${escapeXml(subject)}</text>`,
    `<text x="${M.left}" y="44" font-size="13">${escapeXml(title)}</text>`,
  ];
  // Grid and axes.
  for (const t of yTicks) {
    const y = f(py(t));
    out.push(`<line x1="${M.left}" y1="${y}" x2="${M.left + plotW}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(t.toString())}</text>`);
  }
  for (const t of xTicks) {
    const x = f(px(t));
    out.push(`<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + plotH}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x}" y="${M.top + plotH + 18}" text-anchor="middle">${escapeXml(label(t))}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`);
  out.push(`<text x="${M.left + plotW / 2}" y="${H - 14}" text-anchor="middle">${unit} (measured, after ${result.warmup} warm-up)</text>`);
  out.push(
    `<text x="20" y="${M.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 20 ${M.top + plotH / 2})">${result.target.kind === 'url' ? 'resident memory of the server (MiB)' : 'memory after a full GC (MiB)'}</text>`,
  );
  // Series.
  for (const name of names) {
    const pts = result.samples.map((s) => `${f(px(s.iteration))},${f(py((s.bytes[name] ?? 0) / MiB))}`);
    out.push(`<g class="series" data-series="${name}">`);
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${COLORS[name]}" stroke-width="2"/>`);
    for (const p of pts) {
      const [cx, cy] = p.split(',');
      out.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${COLORS[name]}"/>`);
    }
    out.push('</g>');
  }
  // The fitted line of the deciding series, over the stretch it was fitted on.
  const decider = result.series.find((s) => s.name === result.decidedBy);
  if (decider?.late != null && decider.lateFrom !== null && names.includes(decider.name)) {
    const { bytesPerIteration: slope, intercept } = decider.late;
    const x1 = decider.lateFrom;
    const y = (x: number) => (intercept + slope * x) / MiB;
    out.push(
      `<line class="fit" x1="${f(px(x1))}" y1="${f(py(y(x1)))}" x2="${f(px(xMax))}" y2="${f(py(y(xMax)))}" stroke="#000000" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
  }
  // Legend.
  const lx = M.left + plotW + 16;
  let ly = M.top + 10;
  for (const name of names) {
    const s = result.series.find((r) => r.name === name);
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${COLORS[name]}" stroke-width="2"/>`);
    out.push(`<circle cx="${lx + 11}" cy="${ly}" r="3.5" fill="${COLORS[name]}"/>`);
    out.push(`<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">${name}</text>`);
    if (s?.late != null)
      out.push(
        `<text x="${lx + 30}" y="${ly + 15}" dominant-baseline="middle" font-size="10" fill="#555555">${escapeXml(`${s.late.bytesPerIteration.toFixed(1)} B/${short}, ${s.verdict}`)}</text>`,
      );
    ly += 38;
  }
  out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="#000000" stroke-width="1.5" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${lx + 30}" y="${ly}" dominant-baseline="middle">fit, ${result.decidedBy}</text>`);
  out.push(`<text x="${lx + 30}" y="${ly + 15}" dominant-baseline="middle" font-size="10" fill="#555555">last decade, Theil–Sen</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
