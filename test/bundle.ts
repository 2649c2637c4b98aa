/**
 * Bundles a fixture into one ES module for a child process running plain Node (no TypeScript
 * loader), with custodian's sources and its dependencies inside.
 */
import { resolve } from 'node:path';
import { build } from 'esbuild';

export async function bundleFixture(entry: string, outfile: string): Promise<void> {
  await build({
    entryPoints: [resolve(entry)],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'silent',
    // mysql2 and generic-pool are CommonJS: an ES module bundle needs a require for Node's built-ins.
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
}
