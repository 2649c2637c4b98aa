/**
 * End-to-end HTTP benchmarks: requests per second through real servers on 127.0.0.1, as ratios
 * between variants measured in the same run.
 *
 * 1. `node:http`, a hello handler with 5 awaits:
 *    - bare; bare + one generic-pool acquire/release (what the lease costs without any context);
 *    - `AsyncLocalStorage.run` alone (what carrying any context costs, before any scope or pool);
 *    - hand-written: custodian's own AsyncLocalStorage `.run()` (the same single ALS, so the
 *      process pays for the same number of instances) + generic-pool acquire + try/finally;
 *    - `scoped()` alone; `scoped()` + one pooled lease (sites off, and 'always');
 *    - `withScope()` + `pool.acquire()` by hand (what users wrote before custodian/http).
 *    Targets (the issue's): scoped + lease ≥ 0.90x bare requests/s (checked on Node 24 only: the
 *    floor of ALS on Node 20 is below that), and ≥ 0.95x the hand-written wrapper on both,
 *    judged on a set of their own, head to head (HEAD_TO_HEAD), with an A/A row.
 * 2. Express and Fastify: the same hello handler with and without the integration.
 *
 * Every variant is its own server process (this file, forked with CUSTODIAN_HTTP_BENCH set): on
 * Node 20, once any AsyncLocalStorage is used, every promise in the process pays for its hooks, so
 * a "bare" server sharing a process with a scoped one would not be bare. The servers idle while
 * another is loaded.
 *
 * The load generator is a tight keep-alive HTTP/1.1 client of our own, in the bench process (which
 * does nothing else): 50 connections, one request in flight on each, a fixed request buffer and a
 * parser that only finds the end of each response (every response here has a Content-Length).
 * autocannon and wrk are not dependencies of this project, and a client that parses no more than
 * it must stays far from being the bottleneck: it drives a server that answers without any await
 * well above the fastest variant (the "client ceiling" note).
 *
 * Rounds are interleaved and shuffled (every variant once per round, in a new random order), each
 * lasts `roundMs` of measured load on fresh connections; a ratio is the median of per-round ratios.
 * Beside requests/s, each round records the server process's CPU time per request (the table's
 * "CPU ratio"): on a shared machine the OS descheduling a server lowers its requests/s but not the
 * CPU it spends per request, so that ratio is the steadier of the two.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { EventEmitter } from 'node:events';
import { compareRow, measure, median, type Row, type Sample } from './harness.js';

export interface HttpBenchOptions {
  readonly rounds: number;
  readonly roundMs: number;
  readonly log: (line: string) => void;
  readonly note: (line: string) => void;
}

const CONNECTIONS = 50;
const AWAITS = 5;
/**
 * The target rows' own set: many short rounds of the compared servers only. In the rounds of
 * 2 s over nine servers, the two sides of a per-round ratio are up to 16 s apart, and this
 * machine's speed drifts within that: the target rows' per-round ratios spread 0.85–2.1x in 10
 * rounds (Node 24, 2026-12-07). Rounds of 250 ms over four servers put them within a second,
 * and 60 of them steady the median of per-round ratios (the A/A row says how far it moves).
 */
const HEAD_TO_HEAD = { rounds: 60, roundMs: 250 };

/** `--quick` (a smoke test) asks for rounds of 300 ms, a full run for 2 s. */
function isQuick(options: HttpBenchOptions): boolean {
  return options.roundMs < 1_000;
}

// --- the servers (in their own processes) ----------------------------------------------------------

/** The variants, by the name a server process is started with. */
const SERVERS = [
  'bare',
  'bare+gp',
  'als',
  'als+gp',
  'scoped',
  'scoped+lease',
  'scoped+lease:always',
  'withScope+lease',
  'ceiling',
  'express',
  'express+custodian',
  'express+custodian:always',
  'fastify',
  'fastify+custodian',
  'fastify+custodian:always',
] as const;
type ServerName = (typeof SERVERS)[number];

async function fiveAwaits(): Promise<void> {
  for (let i = 0; i < AWAITS; i++) await null;
}

function hello(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
  res.end('hello');
}

/** Starts one variant's server; resolves with its port. Only what the variant needs is imported. */
async function startServer(name: ServerName): Promise<number> {
  const always = name.endsWith(':always');
  const listen = async (listener: (req: IncomingMessage, res: ServerResponse) => void) => {
    const server = createServer(listener);
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };
  const generic = async () => {
    const { default: genericPool } = await import('generic-pool');
    return genericPool.createPool<{ id: number }>({ create: async () => ({ id: 1 }), destroy: async () => {} }, { max: CONNECTIONS * 2 });
  };
  const custodian = async () => {
    const core = await import('../src/index.js');
    core.configure({ sites: always ? 'always' : 'off' });
    const pool = core.createPool<{ id: number }>(
      { create: () => ({ id: 1 }), destroy: () => {} },
      { name: 'bench http', max: CONNECTIONS * 2 },
    );
    return { core, pool, http: await import('../adapters/http/index.js') };
  };
  switch (name) {
    case 'bare':
      return listen(async (_req, res) => {
        await fiveAwaits();
        hello(res);
      });
    case 'ceiling':
      return listen((_req, res) => hello(res));
    case 'bare+gp': {
      const gp = await generic();
      return listen(async (_req, res) => {
        const r = await gp.acquire();
        try {
          await fiveAwaits();
          hello(res);
        } finally {
          await gp.release(r);
        }
      });
    }
    case 'als': {
      // AsyncLocalStorage.run alone: what any context-carrying integration pays before it does anything.
      const { AsyncLocalStorage } = await import('node:async_hooks');
      const als = new AsyncLocalStorage<{ readonly method: string | undefined }>();
      return listen((req, res) =>
        als.run({ method: req.method }, async () => {
          await fiveAwaits();
          hello(res);
        }),
      );
    }
    case 'als+gp': {
      // What people write by hand: one AsyncLocalStorage, run() per request, try/finally.
      const { AsyncLocalStorage } = await import('node:async_hooks');
      const als = new AsyncLocalStorage<{ readonly method: string | undefined }>();
      const gp = await generic();
      return listen((req, res) =>
        als.run({ method: req.method }, async () => {
          const r = await gp.acquire();
          try {
            await fiveAwaits();
            hello(res);
          } finally {
            await gp.release(r);
          }
        }),
      );
    }
    case 'scoped': {
      const { http } = await custodian();
      return listen(
        http.scoped(async (_req, res) => {
          await fiveAwaits();
          hello(res);
        }),
      );
    }
    case 'scoped+lease':
    case 'scoped+lease:always': {
      const { http, pool } = await custodian();
      return listen(
        http.scoped(async (_req, res) => {
          const lease = await pool.acquire();
          try {
            await fiveAwaits();
            hello(res);
          } finally {
            await lease.release();
          }
        }),
      );
    }
    case 'withScope+lease': {
      const { core, pool } = await custodian();
      return listen((req, res) => {
        void core.withScope(
          async () => {
            const lease = await pool.acquire();
            try {
              await fiveAwaits();
              hello(res);
            } finally {
              await lease.release();
            }
          },
          { name: `${req.method} ${req.url}` },
        );
      });
    }
    case 'express':
    case 'express+custodian':
    case 'express+custodian:always': {
      const { default: express } = await import('express');
      const app = express();
      if (name !== 'express') app.use((await custodian()).http.custodianExpress());
      app.get('/hello', async (_req, res) => {
        await fiveAwaits();
        res.send('hello');
      });
      return listen(app);
    }
    case 'fastify':
    case 'fastify+custodian':
    case 'fastify+custodian:always': {
      const { default: Fastify } = await import('fastify');
      const app = Fastify({ keepAliveTimeout: 60_000 });
      if (name !== 'fastify') await app.register((await custodian()).http.custodianFastify);
      app.get('/hello', async () => {
        await fiveAwaits();
        return 'hello';
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      return (app.server.address() as AddressInfo).port;
    }
  }
}

if (process.env['CUSTODIAN_HTTP_BENCH'] !== undefined && process.send !== undefined) {
  const name = process.env['CUSTODIAN_HTTP_BENCH'] as ServerName;
  // The bench asks for this process's CPU time around each round: CPU per request is less
  // sensitive than requests/s to the OS descheduling a process on a busy machine.
  process.on('message', (message) => {
    if (message !== 'cpu') return;
    const usage = process.cpuUsage();
    process.send?.({ cpu: usage.user + usage.system });
  });
  startServer(name).then(
    (port) => process.send?.({ port }),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
  process.on('disconnect', () => process.exit(0));
}

interface Child {
  readonly process: ChildProcess;
  readonly port: number;
}

/** The server process's CPU time so far, in µs. */
function cpuOf(child: Child): Promise<number> {
  return new Promise((resolve) => {
    const onMessage = (m: { cpu?: number }) => {
      if (m.cpu === undefined) return;
      child.process.off('message', onMessage);
      resolve(m.cpu);
    };
    child.process.on('message', onMessage);
    child.process.send('cpu');
  });
}

/**
 * Where the client and the servers run. On a machine of 2 cores, a client and a server left to the
 * scheduler share both: a costlier server then also slows its client down, and a requests/s ratio
 * mixes the two. With `taskset` (Linux), the client (this process, all its threads) is pinned to
 * the first core and every server to the second, so that a server's rate is what its own core
 * can do, as long as the client outpaces it (the "client ceiling" note says whether it did).
 * `CUSTODIAN_BENCH_NO_PIN=1` leaves placement to the scheduler.
 */
interface Placement {
  readonly serverCpu: string;
  /** Undoes the client's pinning. */
  readonly restore: () => void;
}

function pin(): Placement | undefined {
  const n = cpus().length;
  if (process.platform !== 'linux' || n < 2 || process.env['CUSTODIAN_BENCH_NO_PIN'] === '1') return undefined;
  const all = `0-${n - 1}`;
  try {
    execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  } catch {
    return undefined; // no taskset, or not allowed: the scheduler places them
  }
  return {
    serverCpu: n === 2 ? '1' : `1-${n - 1}`,
    restore: () => {
      try {
        execFileSync('taskset', ['-a', '-p', '-c', all, String(process.pid)], { stdio: 'ignore' });
      } catch {
        // the suite's figures are taken; the rest of the run keeps the one core
      }
    },
  };
}

async function spawnServer(name: ServerName, placement: Placement | undefined): Promise<Child> {
  const file = fileURLToPath(import.meta.url);
  const child = fork(file, [], {
    env: { ...process.env, CUSTODIAN_HTTP_BENCH: name, NODE_ENV: 'production' },
    // Pinned: `taskset -c <cpu> node <file>` (fork runs execPath, then execArgv, then the file).
    ...(placement === undefined ? { execArgv: [] } : { execPath: 'taskset', execArgv: ['-c', placement.serverCpu, process.execPath] }),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`http bench server ${name} exited (${code}) before listening`)));
  });
  return { process: child, port };
}

// --- the client ------------------------------------------------------------------------------------

interface Load {
  readonly done: number;
  readonly errors: number;
  readonly ms: number;
}

/**
 * Loads `port` for `ms` from CONNECTIONS fresh keep-alive connections (all connected before the
 * clock starts), one request in flight on each. Counts responses completed within the window.
 */
function load(port: number, ms: number): Promise<Load> {
  const request = Buffer.from('GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'latin1');
  return new Promise((resolve) => {
    let done = 0;
    let errors = 0;
    let open = 0;
    let ready = 0;
    let stop = false;
    let elapsed = 0;
    const sockets: ReturnType<typeof connect>[] = [];
    const go = () => {
      const t0 = performance.now();
      for (const s of sockets) s.write(request);
      setTimeout(() => {
        stop = true;
        elapsed = performance.now() - t0;
      }, ms);
    };
    for (let i = 0; i < CONNECTIONS; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      open++;
      sockets.push(socket);
      let buf = '';
      socket.on('connect', () => {
        if (++ready === CONNECTIONS) go();
      });
      socket.on('data', (chunk: Buffer) => {
        buf += chunk.toString('latin1');
        for (;;) {
          const head = buf.indexOf('\r\n\r\n');
          if (head === -1) return;
          const m = /content-length: *(\d+)/i.exec(buf.slice(0, head));
          if (m === null) {
            errors++;
            socket.destroy();
            return;
          }
          const end = head + 4 + Number(m[1]);
          if (buf.length < end) return;
          if (!buf.startsWith('HTTP/1.1 200')) errors++;
          buf = buf.slice(end);
          if (stop) {
            socket.end();
            return;
          }
          done++;
          socket.write(request);
        }
      });
      socket.on('error', () => void errors++);
      socket.on('close', () => {
        if (--open === 0) resolve({ done, errors, ms: elapsed });
      });
    }
  });
}

// --- measuring -------------------------------------------------------------------------------------

interface HttpVariant {
  readonly name: string;
  readonly server: ServerName;
}

/** Measures variants in shuffled interleaved rounds; a Sample per variant, in ns per request. */
async function measureHttp(
  children: ReadonlyMap<ServerName, Child>,
  variants: readonly HttpVariant[],
  options: HttpBenchOptions,
): Promise<Sample[]> {
  const rounds: number[][] = variants.map(() => []);
  const cpuRounds: number[][] = variants.map(() => []);
  const errors: number[] = variants.map(() => 0);
  const portOf = (v: HttpVariant) => (children.get(v.server) as Child).port;
  // Warm-up: JIT, the pools, the servers' first connections.
  for (const v of variants) await load(portOf(v), Math.max(300, options.roundMs / 2));
  for (let r = 0; r < options.rounds; r++) {
    const order = variants.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    for (const i of order) {
      const v = variants[i] as HttpVariant;
      const child = children.get(v.server) as Child;
      const cpu0 = await cpuOf(child);
      const result = await load(child.port, options.roundMs);
      const cpu1 = await cpuOf(child);
      errors[i] = (errors[i] as number) + result.errors;
      (rounds[i] as number[]).push((result.ms * 1e6) / Math.max(1, result.done));
      (cpuRounds[i] as number[]).push(((cpu1 - cpu0) * 1e3) / Math.max(1, result.done));
    }
  }
  const samples = variants.map((v, i): Sample => {
    const values = rounds[i] as number[];
    const m = median(values);
    return {
      name: v.name,
      ops: 0,
      rounds: values,
      median: m,
      cpuMedian: median(cpuRounds[i] as number[]), // the server process's CPU time per request
      min: Math.min(...values),
      max: Math.max(...values),
      shortestRoundMs: options.roundMs,
    };
  });
  for (const [i, s] of samples.entries()) {
    options.log(
      `    ${s.name.padEnd(58)} ${(1e9 / s.median).toFixed(0).padStart(7)} req/s  [${(1e9 / s.max).toFixed(0)} – ${(1e9 / s.min).toFixed(0)}]  server CPU ${(s.cpuMedian / 1000).toFixed(1)} µs/req${(errors[i] as number) > 0 ? `  ${errors[i]} errors` : ''}`,
    );
    if ((errors[i] as number) > 0) options.note(`http: ${s.name}: ${errors[i]} failed responses`);
  }
  return samples;
}

/** A throughput ratio as a row: the harness's time ratio (ns per request) is its inverse. */
function throughputRow(group: string, name: string, a: Sample, b: Sample, minThroughput?: number, note?: string): Row {
  const target = minThroughput === undefined ? undefined : { maxRatio: Math.round(1000 / minThroughput) / 1000 };
  const row = compareRow(group, name, a, b, target, note);
  const ratio = row.ratio as number;
  return { ...row, name: `${name}: ${(1 / ratio).toFixed(2)}x req/s${minThroughput === undefined ? '' : ` (target ≥ ${minThroughput}x)`}` };
}

// --- in-process: the adapter's own cost per request, without sockets -------------------------------

/**
 * A request and response as the adapter sees them, without a socket: `end()` marks the response
 * finished and emits `close` on the next tick, as Node does. What the end-to-end rounds cannot
 * resolve on a busy machine (a few hundred ns in ~20 µs of HTTP work) this measures directly.
 */
class FakeResponse extends EventEmitter {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  statusCode = 200;
  end(): void {
    this.headersSent = true;
    this.writableEnded = true;
    this.writableFinished = true;
    process.nextTick(emitClose, this);
  }
  destroy(): void {}
}
function emitClose(res: FakeResponse): void {
  res.emit('close');
}

export async function micro(options: HttpBenchOptions): Promise<Row[]> {
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const { default: genericPool } = await import('generic-pool');
  const core = await import('../src/index.js');
  const http = await import('../adapters/http/index.js');
  const gp = genericPool.createPool<{ id: number }>({ create: async () => ({ id: 1 }), destroy: async () => {} }, { max: 10 });
  const pool = core.createPool<{ id: number }>({ create: () => ({ id: 1 }), destroy: () => {} }, { name: 'bench http micro', max: 10 });
  const als = new AsyncLocalStorage<{ readonly method: string | undefined }>();
  type Req = { method: string; url: string };
  type Listener = (req: Req, res: FakeResponse) => unknown;
  const bare: Listener = async (_req, res) => {
    await fiveAwaits();
    res.end();
  };
  const withGp: Listener = async (_req, res) => {
    const r = await gp.acquire();
    try {
      await fiveAwaits();
      res.end();
    } finally {
      await gp.release(r);
    }
  };
  const handWritten: Listener = (req, res) => als.run({ method: req.method }, withGp, req, res);
  const scopedOnly = http.scoped(bare);
  const withLease: Listener = async (_req, res) => {
    const lease = await pool.acquire();
    try {
      await fiveAwaits();
      res.end();
    } finally {
      await lease.release();
    }
  };
  const scopedLease = http.scoped(withLease);
  const byHand: Listener = (req, res) => core.withScope(() => withLease(req, res), { name: `${req.method} ${req.url}` });
  // One request: the listener runs, and the op ends when the response has closed.
  const serve = (listener: Listener) => async (n: number) => {
    for (let i = 0; i < n; i++) {
      const res = new FakeResponse();
      const closed = new Promise((resolve) => res.once('close', resolve));
      listener({ method: 'GET', url: '/hello?x=1' }, res);
      await closed;
    }
  };
  const off = () => void core.configure({ sites: 'off' });
  const always = () => void core.configure({ sites: 'always' });
  const quick = isQuick(options);
  const samples = await measure(
    [
      { name: 'listener, bare (5 awaits)', setup: off, run: serve(bare) },
      { name: 'listener + generic-pool', setup: off, run: serve(withGp) },
      { name: 'hand-written ALS.run + generic-pool + try/finally', setup: off, run: serve(handWritten) },
      { name: 'scoped(), no lease [sites off]', setup: off, run: serve(scopedOnly) },
      { name: 'scoped() + pooled lease [sites off]', setup: off, run: serve(scopedLease) },
      { name: 'scoped() + pooled lease [sites always]', setup: always, run: serve(scopedLease) },
      { name: 'withScope() + pool.acquire() by hand [sites off]', setup: off, run: serve(byHand) },
    ],
    { rounds: quick ? 3 : 11, roundMs: quick ? 30 : 100, log: options.log },
  );
  const [b, g, hand, sOnly, sLease, sAlways, wHand] = samples as [Sample, Sample, Sample, Sample, Sample, Sample, Sample];
  await pool.close();
  await gp.drain();
  await gp.clear();
  const m = 'http in-process';
  return [
    compareRow(m, 'scoped() alone vs bare listener', sOnly, b, undefined, 'the adapter: scope, close listener, names'),
    compareRow(m, 'scoped() + pooled lease vs hand-written ALS.run + generic-pool', sLease, hand),
    compareRow(m, 'scoped() + pooled lease, sites always, vs hand-written', sAlways, hand),
    compareRow(m, 'custodian pool lease in scoped() vs scoped() alone', sLease, sOnly, undefined, 'what the lease adds'),
    compareRow(m, 'generic-pool in a bare listener vs bare', g, b, undefined, 'what a raw pool adds'),
    compareRow(m, 'scoped() + pooled lease vs withScope() by hand', sLease, wHand),
  ];
}

export async function httpBench(options: HttpBenchOptions): Promise<Row[]> {
  const children: Child[] = [];
  const node24 = Number(process.versions.node.split('.')[0]) >= 24;
  const placement = pin();
  options.note(
    placement === undefined
      ? 'http: client and servers placed by the scheduler (no taskset, one core, or CUSTODIAN_BENCH_NO_PIN=1)'
      : `http: client pinned to CPU 0, servers to CPU ${placement.serverCpu} (taskset)`,
  );
  try {
    const ports = new Map<ServerName, Child>();
    for (const name of SERVERS) {
      const child = await spawnServer(name, placement);
      children.push(child);
      ports.set(name, child);
    }
    options.log(
      `  node:http, ${CONNECTIONS} keep-alive connections, ${options.rounds} shuffled rounds of ${options.roundMs} ms, one process per server`,
    );
    const [b, bGp, als, hand, sOnly, sLease, sAlways, wHand, ceil] = (await measureHttp(
      ports,
      [
        { name: 'bare (5 awaits)', server: 'bare' },
        { name: 'bare + generic-pool acquire/release', server: 'bare+gp' },
        { name: 'hand-written ALS.run alone', server: 'als' },
        { name: 'hand-written ALS.run + generic-pool + try/finally', server: 'als+gp' },
        { name: 'scoped(), no lease [sites off]', server: 'scoped' },
        { name: 'scoped() + one pooled lease [sites off]', server: 'scoped+lease' },
        { name: 'scoped() + one pooled lease [sites always]', server: 'scoped+lease:always' },
        { name: 'withScope() + pool.acquire() by hand [sites off]', server: 'withScope+lease' },
        { name: 'client ceiling (no await, no scope)', server: 'ceiling' },
      ],
      options,
    )) as [Sample, Sample, Sample, Sample, Sample, Sample, Sample, Sample, Sample];
    options.note(
      `http: the client drove ${(1e9 / ceil.median).toFixed(0)} req/s against a server that answers at once, ${(b.median / ceil.median).toFixed(2)}x the bare variant's rate`,
    );
    const g = 'http node';
    // The targets, head to head (see HEAD_TO_HEAD); --quick keeps its few rounds: it is a smoke test.
    const h2h = isQuick(options) ? options : { ...options, ...HEAD_TO_HEAD };
    options.log(`  the targets head to head: ${h2h.rounds} shuffled rounds of ${h2h.roundMs} ms`);
    const [hb, hLease, hHand, hAgain] = (await measureHttp(
      ports,
      [
        { name: 'bare (5 awaits)', server: 'bare' },
        { name: 'scoped() + one pooled lease [sites off]', server: 'scoped+lease' },
        { name: 'hand-written ALS.run + generic-pool + try/finally', server: 'als+gp' },
        { name: 'bare (5 awaits), again: A/A', server: 'bare' },
      ],
      h2h,
    )) as [Sample, Sample, Sample, Sample];
    const rows: Row[] = [
      throughputRow(g, 'head to head: A/A, bare vs itself (the noise floor)', hAgain, hb),
      throughputRow(
        g,
        'head to head: scoped() + pooled lease vs bare',
        hLease,
        hb,
        node24 ? 0.9 : undefined,
        node24 ? undefined : 'target checked on Node 24',
      ),
      throughputRow(g, 'head to head: scoped() + pooled lease vs hand-written ALS.run + try/finally', hLease, hHand, 0.95),
      throughputRow(g, 'scoped() + pooled lease vs bare', sLease, b),
      throughputRow(g, 'scoped() + pooled lease vs hand-written ALS.run + try/finally', sLease, hand),
      throughputRow(g, 'scoped() + pooled lease, sites always, vs bare', sAlways, b),
      throughputRow(g, 'scoped() alone vs bare', sOnly, b),
      throughputRow(g, 'hand-written ALS.run alone vs bare', als, b, undefined, 'what carrying any context costs'),
      throughputRow(g, 'scoped() alone vs hand-written ALS.run alone', sOnly, als, undefined, "custodian's scope per request"),
      throughputRow(g, 'bare + generic-pool vs bare', bGp, b, undefined, 'the pool without any context'),
      throughputRow(g, 'hand-written ALS.run + generic-pool vs bare', hand, b),
      throughputRow(g, 'withScope() + pool.acquire() by hand vs bare', wHand, b),
      throughputRow(g, 'scoped() + pooled lease vs withScope() by hand', sLease, wHand),
    ];
    options.log('  Express and Fastify, the same hello handler with and without the integration');
    const [e, eS, eA, f, fS, fA] = (await measureHttp(
      ports,
      [
        { name: 'express', server: 'express' },
        { name: 'express + custodianExpress() [sites off]', server: 'express+custodian' },
        { name: 'express + custodianExpress() [sites always]', server: 'express+custodian:always' },
        { name: 'fastify', server: 'fastify' },
        { name: 'fastify + custodianFastify [sites off]', server: 'fastify+custodian' },
        { name: 'fastify + custodianFastify [sites always]', server: 'fastify+custodian:always' },
      ],
      options,
    )) as [Sample, Sample, Sample, Sample, Sample, Sample];
    rows.push(
      throughputRow('http express', 'custodianExpress() vs none, sites off', eS, e),
      throughputRow('http express', 'custodianExpress() vs none, sites always', eA, e),
      throughputRow('http fastify', 'custodianFastify vs none, sites off', fS, f),
      throughputRow('http fastify', 'custodianFastify vs none, sites always', fA, f),
    );
    options.log("  in process, no sockets: the adapter's own cost per request");
    rows.push(...(await micro(options)));
    return rows;
  } finally {
    for (const child of children) child.process.kill();
    placement?.restore();
  }
}
