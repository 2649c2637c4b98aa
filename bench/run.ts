/**
 * Runs every benchmark and prints one table.
 *
 *   npm run bench                      (= npm run build && node --expose-gc dist/bench/run.js)
 *   node --expose-gc dist/bench/run.js --json results.json
 *   node --expose-gc dist/bench/run.js --quick      (fewer, shorter rounds: a smoke test)
 *   node --expose-gc dist/bench/run.js --only pool  (one suite: context, withScope, lease, pool, redis, mysql, memory, sweep, soak, http, testmode)
 *
 * Exits non-zero only when a benchmark crashes; a missed target is reported, never a failure.
 * The pool suite's mysql2 rows use the MariaDB at 127.0.0.1:3306 (root, no password, database
 * `test`; BENCH_MYSQL_HOST / BENCH_MYSQL_PORT override); when it is unreachable they are skipped
 * and a note under the table says why.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resetConfig } from '../src/index.js';
import { formatTable, type MeasureOptions, type Row } from './harness.js';
import { httpBench } from './http.bench.js';
import { leaseBench } from './lease.bench.js';
import { memoryBench } from './memory.bench.js';
import { mysqlBench } from './mysql.bench.js';
import { poolBench } from './pool.bench.js';
import { redisBench } from './redis.bench.js';
import { contextBench, scopeBench } from './scope.bench.js';
import { soakBench } from './soak.bench.js';
import { sweepBench } from './sweep.bench.js';
import { testModeBench } from './testmode.bench.js';

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i === -1) return undefined;
  const value = process.argv[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`${name} needs a value`);
  return value;
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'));
    if (line !== undefined) return line.split(':')[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux
  }
  return cpus()[0]?.model ?? 'unknown';
}

async function main(): Promise<number> {
  const jsonFile = argValue('--json');
  const quick = process.argv.includes('--quick');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const options: MeasureOptions = quick ? { rounds: 3, roundMs: 30, log } : { rounds: 11, roundMs: 100, log };
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    cpu: cpuModel(),
    cores: cpus().length,
    platform: `${process.platform} ${process.arch}`,
  };
  log(`custodian benchmarks: Node ${machine.node}, ${machine.cpu} x${machine.cores}`);
  log(`  ${options.rounds} interleaved rounds of >= ${options.roundMs} ms per variant; median ns/op, [min–max] over rounds`);

  // Defaults, whatever ran before; every variant sets `sites` itself (the one default NODE_ENV changes).
  resetConfig();
  const loadBefore = loadavg()[0] ?? 0;
  /** Lines printed under the table: rows a suite skipped, and why. */
  const notes: string[] = [];
  const suites: [string, () => Promise<Row[]>][] = [
    // First: it measures promises with no AsyncLocalStorage enabled, which later suites enable for good.
    ['context', () => contextBench(options)],
    ['withScope', () => scopeBench(options)],
    ['lease', () => leaseBench(options)],
    ['pool', () => poolBench(options, { iterations: quick ? 100_000 : 1_000_000, note: (line) => notes.push(line) })],
    ['redis', () => redisBench(options, (line) => notes.push(line))],
    ['mysql', () => mysqlBench(options, (line) => notes.push(line))],
    ['memory', () => memoryBench(quick ? { iterations: 100_000, live: 20_000, log } : { log })],
    ['sweep', () => sweepBench(log)],
    ['soak', () => soakBench({ quick, log })],
    ['http', () => httpBench({ rounds: quick ? 3 : 10, roundMs: quick ? 300 : 2_000, log, note: (line) => notes.push(line) })],
    // Last: it turns on test mode's second AsyncLocalStorage, which stays on.
    ['testmode', () => testModeBench(options, !quick, (line) => notes.push(line))],
  ];
  const rows: Row[] = [];
  const crashes: { suite: string; error: string }[] = [];
  const started = performance.now();
  const only = argValue('--only'); // one suite, by name
  for (const [name, suite] of suites) {
    if (only !== undefined && name !== only) continue;
    log(`\n[${name}]`);
    try {
      rows.push(...(await suite()));
    } catch (error) {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      crashes.push({ suite: name, error: text });
      log(`  CRASHED: ${text}`);
    } finally {
      resetConfig();
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const load = `load average ${loadBefore.toFixed(1)} at start, ${(loadavg()[0] ?? 0).toFixed(1)} at end`;

  process.stdout.write(
    `\ncustodian benchmarks — Node ${machine.node}, ${machine.cpu} (${machine.cores} cores), ${seconds.toFixed(0)} s, ${load}\n`,
  );
  process.stdout.write(`median of ${options.rounds} interleaved rounds (each >= ${options.roundMs} ms); [min–max] across rounds\n\n`);
  process.stdout.write(`${formatTable(rows)}\n`);
  const missed = rows.filter((r) => r.met === false);
  process.stdout.write(
    `\ntargets: ${rows.filter((r) => r.met === true).length} met, ${missed.length} missed${missed.length > 0 ? ` (${missed.map((r) => `${r.group}: ${r.name}`).join('; ')})` : ''}\n`,
  );
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  for (const c of crashes) process.stdout.write(`CRASHED: ${c.suite}\n`);

  if (jsonFile !== undefined) {
    const data = {
      date: new Date().toISOString(),
      machine,
      load,
      options: { rounds: options.rounds, roundMs: options.roundMs },
      seconds,
      rows,
      notes,
      crashes,
    };
    writeFileSync(jsonFile, `${JSON.stringify(data, null, 2)}\n`);
    log(`results written to ${jsonFile}`);
  }
  return crashes.length > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
