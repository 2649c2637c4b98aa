/**
 * A process's memory as the kernel accounts it, from `/proc/<pid>/smaps_rollup` (Linux 4.14+):
 * RSS (every resident page it maps), PSS (shared pages divided among the processes sharing them)
 * and USS (pages only it maps: what the system would get back if it exited). Elsewhere, or when
 * the file cannot be read, only RSS of this process is known (process.memoryUsage()).
 */
import { readFileSync } from 'node:fs';

/** Resident memory of one process, in bytes. */
export interface Resident {
  readonly rss: number;
  readonly pss: number;
  readonly uss: number;
}

/** The path of a process's smaps_rollup: `self` for this process. */
export function rollupPath(pid: number | 'self'): string {
  return `/proc/${pid}/smaps_rollup`;
}

/** Parses smaps_rollup text (values in kB) into bytes; `undefined` when a field is missing. */
export function parseRollup(text: string): Resident | undefined {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+) kB/.exec(line);
    if (match !== null) kb.set(match[1] as string, Number(match[2]));
  }
  const rss = kb.get('Rss');
  const pss = kb.get('Pss');
  const clean = kb.get('Private_Clean');
  const dirty = kb.get('Private_Dirty');
  if (rss === undefined || pss === undefined || clean === undefined || dirty === undefined) return undefined;
  // USS: the pages no other process maps (huge pages counted apart, when the kernel lists them).
  const uss = clean + dirty + (kb.get('Private_Hugetlb') ?? 0);
  return { rss: rss * 1024, pss: pss * 1024, uss: uss * 1024 };
}

/**
 * Reads a process's resident memory, or returns why it cannot (`no /proc/<pid>/smaps_rollup: ENOENT`).
 * Reading another user's process needs the same rights as ptrace.
 */
export function readResident(pid: number | 'self'): Resident | string {
  const path = rollupPath(pid);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return `${path} cannot be read (${code})`;
  }
  return parseRollup(text) ?? `${path} has no Rss/Pss/Private_* lines`;
}
