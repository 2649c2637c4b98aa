#!/usr/bin/env node
/**
 * The `custodian` command. One subcommand for now:
 *
 *   custodian soak <module> [--export name] [--iterations N] [--warmup N] [--concurrency N] [--json file] [--svg file]
 *   custodian soak --url http://127.0.0.1:PORT/path --pid PID [--requests N] [--warmup N] [--concurrency N] [--json file] [--svg file]
 *
 * Exit code: 0 stable or bounded, 1 leaking, 2 a usage error (one line on stderr saying what to fix).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { formatReport } from './report.js';
import { renderChart } from './chart.js';
import type { SoakResult, SoakSample } from './result.js';
import { loopbackUrl, MAX_REQUESTS, soakServer } from './server.js';
import { soak, type SoakTask } from './soak.js';
import { formatBytes } from './report.js';

const USAGE = `usage: custodian soak <module> [--export name] [--iterations N] [--warmup N] [--concurrency N] [--json file] [--svg file]
       custodian soak --url http://127.0.0.1:PORT/path --pid PID [--requests N] [--warmup N] [--concurrency N] [--json file] [--svg file]

Runs the module's exported function (default export unless --export) many times, each in its own
custodian scope, or sends keep-alive requests to a server on this machine, and reports whether
memory grows per iteration: the checkpoint table, bytes per iteration with a 95 % interval, the
verdict (stable, bounded, leaking) and the functions whose retained memory grows.
Exit code: 0 stable or bounded, 1 leaking, 2 usage error. See docs/memory.md.`;

/** A usage error: printed as one line, exit code 2. */
class UsageError extends Error {}

function count(name: string, text: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new UsageError(
      `--${name} must be a whole number from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, got ${JSON.stringify(text)}`,
    );
  }
  return value;
}

/** Progress on stderr: a bar redrawn in place on a terminal, plain lines at checkpoints otherwise (no control codes in CI logs). */
function progress(
  tty: boolean,
  unit: string,
): {
  onProgress: (done: number, total: number) => void;
  onSample: (s: SoakSample, index: number, total: number) => void;
  end: () => void;
} {
  const err = process.stderr;
  let last = '';
  return {
    onProgress(done, total) {
      if (!tty) return;
      const width = 30;
      const filled = Math.round((done / total) * width);
      const line = `soak [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${unit}${last}`;
      err.write(`\r${line}\x1b[K`);
    },
    onSample(s, index, total) {
      const memory = s.bytes.heapUsed !== null ? `heapUsed ${formatBytes(s.bytes.heapUsed)}` : `uss ${formatBytes(s.bytes.uss ?? 0)}`;
      last = `  (checkpoint ${index + 1}/${total}: ${memory}, rss ${formatBytes(s.bytes.rss ?? 0)})`;
      if (!tty)
        err.write(`soak: checkpoint ${index + 1}/${total} at ${s.iteration} ${unit}: ${memory}, rss ${formatBytes(s.bytes.rss ?? 0)}\n`);
    },
    end() {
      if (tty) err.write('\r\x1b[K');
    },
  };
}

async function loadTask(module: string, exportName: string): Promise<SoakTask> {
  const path = resolve(module);
  if (!existsSync(path)) throw new UsageError(`cannot find module ${module} (looked for ${path})`);
  // Sites in compiled code (TypeScript, bundles) then name the original sources.
  process.setSourceMapsEnabled(true);
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`cannot load ${module}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
  }
  const task = namespace[exportName];
  if (typeof task !== 'function') {
    const functions = Object.keys(namespace).filter((k) => typeof namespace[k] === 'function');
    throw new UsageError(
      `${module} exports no function named '${exportName}' (${exportName in namespace ? `it is ${typeof task}` : 'not exported'}); ${functions.length > 0 ? `functions it exports: ${functions.join(', ')}; pick one with --export` : 'it exports no function'}`,
    );
  }
  return task as SoakTask;
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command !== 'soak') throw new UsageError(`unknown command ${JSON.stringify(command)}; the command is: custodian soak`);
  let parsed: ReturnType<typeof parseSoakArgs>;
  try {
    parsed = parseSoakArgs(rest);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const concurrency = count('concurrency', values.concurrency, 1, 10_000);
  const warmup = count('warmup', values.warmup, 0);
  const tty = process.stderr.isTTY === true;
  let result: SoakResult;
  if (values.url !== undefined) {
    if (positionals.length > 0) throw new UsageError(`give a module or --url, not both (got ${positionals.join(' ')} and --url)`);
    if (values.iterations !== undefined) throw new UsageError('with --url, the count is --requests, not --iterations');
    const url = loopbackUrl(values.url);
    if (typeof url === 'string') throw new UsageError(`--url ${values.url}: ${url}`);
    if (values.pid === undefined) throw new UsageError('--url needs --pid PID: the server process whose memory to read');
    const pid = count('pid', values.pid, 1, 2 ** 22);
    if (process.platform !== 'linux') throw new UsageError('--url mode reads /proc/<pid>/smaps_rollup, which only Linux has');
    if (!existsSync(`/proc/${pid}`)) throw new UsageError(`--pid ${pid}: no such process`);
    const requests = count('requests', values.requests, 1, MAX_REQUESTS) ?? 10_000;
    const p = progress(tty, 'requests');
    try {
      result = await soakServer({
        url: url.href,
        pid: pid as number,
        requests,
        warmup,
        concurrency,
        onProgress: p.onProgress,
        onSample: p.onSample,
      });
    } catch (error) {
      p.end();
      const message = error instanceof Error ? error.message : String(error);
      const code = (error as NodeJS.ErrnoException).code;
      throw new UsageError(code === undefined ? message : `cannot reach ${url.href}: ${code} (is the server listening?)`);
    } finally {
      p.end();
    }
  } else {
    if (positionals.length !== 1)
      throw new UsageError(
        positionals.length === 0 ? 'which module? custodian soak <module> (or --url)' : `one module, got ${positionals.join(' ')}`,
      );
    if (values.requests !== undefined || values.pid !== undefined) throw new UsageError('--requests and --pid go with --url');
    const iterations = count('iterations', values.iterations, 1) ?? 10_000;
    const module = positionals[0] as string;
    const task = await loadTask(module, values.export ?? 'default');
    const p = progress(tty, 'iterations');
    try {
      result = await soak(task, {
        iterations,
        warmup,
        concurrency,
        onProgress: p.onProgress,
        onSample: p.onSample,
        name: `${module}#${values.export ?? 'default'}`,
      });
    } finally {
      p.end();
    }
  }
  process.stdout.write(`${formatReport(result)}\n`);
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  if (values.svg !== undefined) writeFileSync(values.svg, renderChart(result));
  return result.verdict === 'leaking' ? 1 : 0;
}

function parseSoakArgs(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      export: { type: 'string' },
      iterations: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      json: { type: 'string' },
      svg: { type: 'string' },
      url: { type: 'string' },
      pid: { type: 'string' },
      requests: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`custodian soak: ${error.message.replace(/\s*\n\s*/g, ' ')}\n`);
      process.exitCode = 2;
      return;
    }
    // A task that threw (or a bug): what and where on the first line, then the task's own stack;
    // exit 2, as no verdict was reached.
    const cause = error instanceof Error ? error.cause : undefined;
    const detail = cause instanceof Error ? cause.stack : error instanceof Error ? error.stack?.split('\n').slice(1).join('\n') : undefined;
    process.stderr.write(
      `custodian soak: ${error instanceof Error ? error.message : String(error)}\n${detail === undefined ? '' : `${detail}\n`}`,
    );
    process.exitCode = 2;
  },
);
