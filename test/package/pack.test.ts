/**
 * The package as a user gets it: `npm pack`, installed from the tarball into a fresh project, then
 * imported from an ES module and required from CommonJS. Installing warns about no install script,
 * and the tarball ships no source map (a map pointing at sources that are not shipped makes every
 * consumer's test runner warn).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let dir = '';
let tarball = '';
let files: string[] = [];
let installLog = '';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'custodian-pack-'));
  // --ignore-scripts: the suite runs after `npm run build`, which prepack would run again.
  const { stdout } = await run(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: root });
  const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  if (packed === undefined) throw new Error(`npm pack printed no package: ${stdout}`);
  tarball = join(dir, packed.filename);
  files = packed.files.map((f) => f.path);
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const installed = await run(npm, ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app });
  installLog = installed.stdout + installed.stderr;
  // The adapters' libraries, as a user of each adapter installs them (optional peers: never installed for them).
  const peers = Object.keys(
    (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { peerDependencies: object }).peerDependencies,
  );
  await run(npm, ['install', ...peers.filter((name) => name !== 'vitest'), '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app });
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the packed tarball', () => {
  it('holds the built code, declarations, README, LICENSE and docs, and no source map', () => {
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/index.d.ts');
    expect(files).toContain('dist/adapters/vitest/setup.js');
    expect(files).toContain('LICENSE');
    expect(files).toContain('README.md');
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);
  });

  it('installs into a fresh project with no warning about install scripts', () => {
    expect(installLog).not.toMatch(/install[- ]scripts|allowScripts|prepare/i);
    expect(readdirSync(join(dir, 'app', 'node_modules', 'custodian', 'dist', 'src'))).toContain('index.js');
  });

  it('is imported from an ES module and required from CommonJS, the same API either way', async () => {
    const app = join(dir, 'app');
    const probe = `
      const names = Object.keys(api).sort().join(',');
      await api.withScope(async (scope) => { scope.track(1, { release: () => {} }).release(); });
      console.log(names);`;
    writeFileSync(join(app, 'esm.mjs'), `import * as api from 'custodian';\n${probe}\n`);
    writeFileSync(join(app, 'cjs.cjs'), `const api = require('custodian');\n(async () => {${probe}\n})();\n`);
    const esm = await run(process.execPath, ['esm.mjs'], { cwd: app });
    const cjs = await run(process.execPath, ['cjs.cjs'], { cwd: app });
    expect(esm.stdout.trim()).toContain('createPool,currentScope');
    expect(cjs.stdout.trim()).toBe(esm.stdout.trim());
    expect(esm.stderr + cjs.stderr).toBe('');
  });

  it('resolves every entry of the exports map from an ES module and from CommonJS, with the same names', async () => {
    const app = join(dir, 'app');
    const exportsMap = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }).exports;
    // The vitest entries need a running Vitest; the package.json entry is data.
    const entries = Object.keys(exportsMap)
      .filter((key) => key !== './package.json' && !key.startsWith('./vitest'))
      .map((key) => `custodian${key.slice(1)}`);
    expect(entries.length).toBeGreaterThan(1);
    for (const entry of entries) {
      writeFileSync(
        join(app, 'entry.mjs'),
        `const api = await import(${JSON.stringify(entry)});\nconsole.log(Object.keys(api).sort().join(','));\n`,
      );
      writeFileSync(
        join(app, 'entry.cjs'),
        `const api = require(${JSON.stringify(entry)});\nconsole.log(Object.keys(api).sort().join(','));\n`,
      );
      const esm = await run(process.execPath, ['entry.mjs'], { cwd: app });
      const cjs = await run(process.execPath, ['entry.cjs'], { cwd: app });
      expect(esm.stdout.trim(), entry).not.toBe('');
      expect(cjs.stdout.trim(), entry).toBe(esm.stdout.trim());
    }
  }, 60_000);
});
