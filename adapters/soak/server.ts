/**
 * soakServer(): drives a running HTTP server on this machine with keep-alive GET requests and
 * samples that process's RSS, PSS and USS from /proc/<pid>/smaps_rollup at checkpoints, for a
 * server in any language. Nothing can force a GC in another process, so its readings carry its
 * garbage; the fit's interval says how much that matters.
 */
import { Agent, request } from 'node:http';
import { isIP } from 'node:net';
import { rules, validateOptions, type Rule } from '../../src/internal.js';
import { conclude } from './analyse.js';
import type { SeriesName, SoakResult, SoakSample } from './result.js';
import { readResident } from './smaps.js';
import { geometricCheckpoints } from './verdict.js';

/** Options of soakServer(). */
export interface SoakServerOptions {
  /** `http://` URL on a loopback address (127.0.0.0/8, ::1, localhost). */
  url: string;
  /** The server's process id, to read /proc/<pid>/smaps_rollup. */
  pid: number;
  /** Measured requests, at most 10,000,000. Default 10,000. */
  requests?: number | undefined;
  /** Requests before measuring. Default a tenth of `requests`, at most 1,000. */
  warmup?: number | undefined;
  /** Requests in flight at once (one keep-alive connection each). Default 1. */
  concurrency?: number | undefined;
  /** As in soak(). Default 11 geometric checkpoints. */
  checkpoints?: number | undefined;
  /** Growth per request below which a series counts as flat, in bytes. Default 1. */
  threshold?: number | undefined;
  /** Milliseconds to let the server settle before each reading. Default 100. */
  settleMs?: number | undefined;
  onSample?: ((sample: SoakSample, index: number, total: number) => void) | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/** Most requests one soak sends: a bound, so that a typo cannot flood a server for hours. */
export const MAX_REQUESTS = 10_000_000;

/** The loopback host of `url`, or why it is not one (for the error message). */
export function loopbackUrl(url: string): URL | string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `not a URL: ${JSON.stringify(url)}`;
  }
  if (parsed.protocol !== 'http:') return `only http:// is supported, got ${parsed.protocol}//`;
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
  return loopback
    ? parsed
    : `${host} is not a loopback address (127.0.0.1, ::1 or localhost): custodian soak drives servers on this machine only`;
}

const optionRules: Record<keyof SoakServerOptions, Rule> = {
  url: (value) =>
    typeof value === 'string' ? (typeof loopbackUrl(value) === 'string' ? (loopbackUrl(value) as string) : undefined) : 'a string',
  pid: rules.positiveInt,
  requests: (value) =>
    typeof value === 'number' && Number.isInteger(value) && value > 0 && value <= MAX_REQUESTS
      ? undefined
      : `a whole number from 1 to ${MAX_REQUESTS}`,
  warmup: rules.count,
  concurrency: rules.positiveInt,
  checkpoints: (value) => (typeof value === 'number' && Number.isInteger(value) && value >= 3 ? undefined : 'a whole number from 3'),
  threshold: (value) => (typeof value === 'number' && Number.isFinite(value) && value >= 0 ? undefined : 'a number of bytes, 0 or more'),
  settleMs: rules.ms,
  onSample: rules.function,
  onProgress: rules.function,
};

/** One GET on a kept-alive connection; resolves with the status once the body is read. */
function get(agent: Agent, url: URL): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, method: 'GET' }, (res) => {
      res.on('error', reject);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.resume();
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Sends `warmup` then `requests` keep-alive GET requests to `url`, `concurrency` at a time, and
 * samples the RSS, PSS and USS of process `pid` at checkpoints; resolves with the same result as
 * soak() (the verdict from USS). Rejects with a TypeError naming the option for bad options
 * (before any request), and with the transport error when a request fails.
 */
export async function soakServer(options: SoakServerOptions): Promise<SoakResult> {
  validateOptions('soakServer()', options, optionRules);
  if (options.url === undefined) throw new TypeError("soakServer(): option 'url' is required");
  if (options.pid === undefined) throw new TypeError("soakServer(): option 'pid' is required");
  const url = loopbackUrl(options.url) as URL;
  const { pid } = options;
  const first = readResident(pid);
  if (typeof first === 'string') throw new TypeError(`soakServer(): option 'pid': ${first}; is process ${pid} running, and yours?`);
  const requests = options.requests ?? 10_000;
  const warmup = options.warmup ?? Math.min(1000, Math.ceil(requests / 10));
  const concurrency = options.concurrency ?? 1;
  const marks = geometricCheckpoints(requests, options.checkpoints ?? 11);
  const settleMs = options.settleMs ?? 100;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses = new Map<number, number>();
  const total = warmup + requests;
  const every = Math.max(1, Math.floor(total / 200));
  let done = 0;
  const send = async (count: number): Promise<void> => {
    let left = count;
    const worker = async (): Promise<void> => {
      while (left > 0) {
        left--;
        const status = await get(agent, url);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (++done % every === 0) options.onProgress?.(done, total);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  };
  const samples: SoakSample[] = [];
  let started = performance.now();
  const take = async (iteration: number): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    const resident = readResident(pid);
    if (typeof resident === 'string') throw new Error(`soakServer(): process ${pid} went away during the soak: ${resident}`);
    const sample: SoakSample = {
      iteration,
      elapsedMs: performance.now() - started,
      bytes: { heapUsed: null, external: null, arrayBuffers: null, ...resident },
    };
    samples.push(sample);
    options.onSample?.(sample, samples.length - 1, marks.length + 1);
  };
  try {
    await send(warmup);
    started = performance.now();
    await take(0);
    let at = 0;
    for (const mark of marks) {
      await send(mark - at);
      at = mark;
      await take(mark);
    }
  } finally {
    agent.destroy();
  }
  const outside = 'not visible from outside the process';
  const missing = new Map<SeriesName, string>([
    ['heapUsed', outside],
    ['external', outside],
    ['arrayBuffers', outside],
  ]);
  const conclusion = conclude(samples, ['uss'], missing, options.threshold ?? 1, 'request');
  const notes = [...statuses]
    .filter(([status]) => status < 200 || status >= 300)
    .map(([status, count]) => `${count} of ${total} responses had status ${status}`);
  notes.push('the server cannot be made to collect its garbage from here: its readings include garbage not yet collected');
  return {
    target: { kind: 'url', url: url.href, pid },
    iterations: requests,
    warmup,
    concurrency,
    durationMs: performance.now() - started,
    node: process.version,
    samples,
    ...conclusion,
    sites: [],
    profiler: { enabled: false, samplingInterval: 0, note: 'not available for another process' },
    leaseSites: [],
    notes,
  };
}
