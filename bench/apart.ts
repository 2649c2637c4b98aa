/**
 * Variants measured in processes of their own, with rounds interleaved as `measure` does.
 *
 * For variants that slow each other down in one process, which no application (it uses one of
 * them) sees: custodian/mysql and mysql2's pool both run mysql2's connection code, with different
 * connection objects (docs/performance.md, MySQL, says what was measured). Each variant here is a child
 * process (the calling bench file, forked with `CUSTODIAN_APART` set to the variant's key) that
 * runs rounds when asked and answers with its wall and CPU time. The parent only schedules.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { sampleOf, timeRound, type RoundTime, type Sample } from './harness.js';

const ENV = 'CUSTODIAN_APART';

/** One variant: `key` tells the child which one it is. */
export interface ApartVariant {
  readonly name: string;
  readonly key: string;
}

/**
 * In a child: the key this process was forked for, or `undefined` in the parent. A bench file
 * calls it at load and, when it gets a key, calls `serveApart` instead of running as a suite.
 */
export function apartKey(): string | undefined {
  return process.send === undefined ? undefined : process.env[ENV];
}

/**
 * In a child: builds the variant's `run(n)` once, then runs rounds on request (`run(chunk)`
 * repeated until `minMs` have passed) until the parent disconnects; `close` runs then.
 */
export function serveApart(make: () => Promise<{ run: (n: number) => Promise<void>; close: () => Promise<void> }>): void {
  make().then(
    ({ run, close }) => {
      process.on('message', (m: { chunk: number; minMs: number }) => {
        void timeRound({ run }, m.chunk, m.minMs).then((round) => process.send?.(round));
      });
      process.on('disconnect', () => void close().finally(() => process.exit(0)));
      process.send?.({ ready: true });
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

function ask(child: ChildProcess, chunk: number, minMs: number): Promise<RoundTime> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`bench child exited (${code}) in a round`));
    child.once('exit', onExit);
    child.once('message', (m: RoundTime) => {
      child.off('exit', onExit);
      resolve(m);
    });
    child.send({ chunk, minMs });
  });
}

/** Forks one child per variant and waits until each has built its client. */
async function spawn(file: string, variants: readonly ApartVariant[]): Promise<ChildProcess[]> {
  return Promise.all(
    variants.map(async (v) => {
      const child = fork(file, [], { env: { ...process.env, [ENV]: v.key }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      await new Promise<void>((resolve, reject) => {
        child.once('message', () => resolve());
        child.once('exit', (code) => reject(new Error(`bench child ${v.key} exited (${code}) before it was ready`)));
      });
      return child;
    }),
  );
}

async function stop(children: readonly ChildProcess[]): Promise<void> {
  for (const child of children) child.disconnect();
  await Promise.all(
    children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once('exit', resolve)))),
  );
}

/**
 * Measures the variants, each in a process of its own forked from `file`, in `rounds` interleaved
 * rounds (the order rotates) of at least `roundMs`, `chunk` operations at a time. A process can
 * run 10 % slower than its twin for its whole life (two mysql2 children measured 0.90x and 0.92x
 * each other over 121 rounds), so the rounds are spread over `generations` sets of fresh children,
 * each warmed up with `warmup` untimed rounds. Returns one sample per variant, as `measure` does.
 */
export async function measureApart(
  file: string,
  variants: readonly ApartVariant[],
  options: { rounds: number; roundMs: number; chunk: number; generations?: number; warmup?: number; log?: (line: string) => void },
): Promise<Sample[]> {
  const generations = options.generations ?? 4;
  const rounds: RoundTime[][] = variants.map(() => []);
  for (let g = 0; g < generations; g++) {
    const children = await spawn(file, variants);
    try {
      for (let w = 0; w < (options.warmup ?? 3); w++) for (const child of children) await ask(child, options.chunk, options.roundMs);
      const own = Math.ceil(options.rounds / generations);
      for (let r = 0; r < own; r++) {
        for (let k = 0; k < variants.length; k++) {
          const i = (k + r + g) % variants.length;
          (rounds[i] as RoundTime[]).push(await ask(children[i] as ChildProcess, options.chunk, options.roundMs));
        }
      }
    } finally {
      await stop(children);
    }
  }
  const samples = variants.map((v, i) => sampleOf(v.name, rounds[i] as RoundTime[]));
  for (const s of samples) {
    options.log?.(
      `    ${s.name.padEnd(52)} ${s.median.toFixed(0).padStart(7)} ns/op  cpu ${s.cpuMedian.toFixed(0)} ns/op (own process, ${generations} generations)`,
    );
  }
  return samples;
}
