/**
 * Runs a fixture in a child process under `--expose-gc --trace-deopt` and lists the functions V8
 * deoptimized because a full GC dropped the object shapes their code was compiled against ("weak
 * objects"). The fixture runs its paths through `aroundCollections` (fixtures/collections.ts),
 * which prints the markers read here, and writes `ok` on stderr.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { bundleFixture } from './bundle.js';
import { MARKERS } from './fixtures/collections.js';

export async function weakObjectDeopts(fixture: string, hot: ReadonlySet<string>): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'custodian-deopts-'));
  try {
    const outfile = join(dir, basename(fixture).replace(/\.ts$/, '.mjs'));
    await bundleFixture(fixture, outfile);
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--expose-gc', '--trace-deopt', outfile], {
      timeout: 50_000,
      maxBuffer: 256 * 1024 * 1024,
    });
    if (stderr.trim() !== 'ok') throw new Error(`${fixture} did not finish: ${stderr}`);
    const start = stdout.indexOf(MARKERS.start);
    const end = stdout.indexOf(MARKERS.end);
    if (start === -1 || end < start) throw new Error(`${fixture} printed no markers`);
    return [
      ...stdout
        .slice(start, end)
        .matchAll(/<SharedFunctionInfo ([^>]*)>\) \(opt id \d+\) for deoptimization, reason: (?:embedded )?weak objects/g),
    ]
      .map((m) => m[1] as string)
      .filter((name) => hot.has(name));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
