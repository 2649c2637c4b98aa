/**
 * Sites in a bundled app: custodian bundled with the app's own code into one file (esbuild, as
 * apps are shipped), run with and without `--enable-source-maps`. The leak is reported at the
 * app's line: in its TypeScript source with source maps, in the bundle without; never "site
 * unknown", and never a line of custodian's own code inside the bundle.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build, type Format } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const fixture = resolve('test/fixtures/bundled-app/app.ts');
const source = readFileSync(fixture, 'utf8').split('\n');
const leakLine = source.findIndex((line) => line.includes('// LEAK')) + 1;
const leakColumn = (source[leakLine - 1] ?? '').indexOf('pool.acquire') + 1 + 'pool.'.length;

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'custodian-bundled-'));
  cpSync(fixture, join(dir, 'src', 'app.ts'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bundles the app with custodian's sources into dist/app.<ext>; returns its path relative to the app. */
async function bundle(format: Format): Promise<string> {
  const out = `dist/app.${format === 'esm' ? 'mjs' : 'cjs'}`;
  await build({
    entryPoints: [join(dir, 'src', 'app.ts')],
    outfile: join(dir, out),
    bundle: true,
    platform: 'node',
    target: 'node20',
    format,
    sourcemap: true,
    logLevel: 'silent',
    alias: { custodian: resolve('src/index.ts') },
    // generic-pool is CommonJS: an ES module bundle needs a require for its Node built-ins.
    ...(format === 'esm'
      ? { banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" } }
      : {}),
  });
  return out;
}

/** Runs the bundle from the app's folder and returns the sites its leak reports named. */
async function sitesReported(file: string, flags: string[]): Promise<string[]> {
  const { stdout } = await run(process.execPath, [...flags, file], { cwd: dir });
  return stdout
    .trim()
    .split('\n')
    .flatMap((line) => JSON.parse(line) as string[]);
}

describe.each(['esm', 'cjs'] as const)('an app bundled as %s with custodian inside', (format) => {
  it('reports the leak at the TypeScript line with --enable-source-maps', async () => {
    const file = await bundle(format);
    expect(await sitesReported(file, ['--enable-source-maps'])).toEqual([`src/app.ts:${leakLine}:${leakColumn}`]);
  });

  it('reports it at the bundle line without source maps: in the app code, not in custodian', async () => {
    const file = await bundle(format);
    const [site] = await sitesReported(file, []);
    expect(site).toMatch(new RegExp(`^${file.replace('.', '\\.')}:\\d+:\\d+$`));
    const [line, column] = (site as string).split(':').slice(1).map(Number);
    const text = readFileSync(join(dir, file), 'utf8').split('\n')[(line as number) - 1] ?? '';
    expect(text.slice((column as number) - 1)).toMatch(/^acquire\(\)/);
    expect(text).toContain('await pool.acquire()');
  });
});
