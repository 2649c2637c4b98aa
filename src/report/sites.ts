/**
 * Acquisition sites: where in the user's code a lease or scope was acquired.
 *
 * Capturing a stack costs 2–4 µs and formatting it 10–18 µs, so capture only records V8's raw
 * frames (`Error.captureStackTrace` on a bare object) and formatting waits until a report or
 * `inspect()` needs the text (or, for an unscoped lease, its creation: see createLease). The formatted site is the first frame outside custodian and
 * `node_modules`, relative to the working directory: `src/routes/users.ts:42:18`.
 */
import { isAbsolute, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onSettingsChange, settings } from '../config/config.js';

/** A captured stack, and its first user frame once formatted (`null`: formatted, none found). */
export interface RawSite {
  readonly stack?: string;
  site?: string | null;
}

/**
 * Captures the caller's stack when the `sites` setting asks for it. `boundary` is the public
 * function the user called: frames above it (inside custodian) are left out of the capture.
 */
export function captureSite(boundary: Boundary): RawSite | undefined {
  const mode = settings.sites;
  if (mode === 'off' || (mode === 'sampled' && !sampleThis())) return undefined;
  const holder: RawSite = {};
  Error.captureStackTrace(holder, boundary);
  return holder;
}

// Sampling: which acquisitions are recorded under 'sampled'. Each is recorded with probability
// sampleRate, independently, as with a Math.random() per acquisition; but the gap to the next
// recorded one is drawn once per sample (a geometric draw), so the other 99 % of acquisitions pay
// a decrement instead of a random number (about 15 ns of an acquire's hot path). A settings change
// draws the gap again, at the new rate (the draw has no memory, so redrawing changes no odds).
let untilSample = sampleGap(settings.sampleRate);
onSettingsChange(() => {
  untilSample = sampleGap(settings.sampleRate);
});

/** True for the acquisitions to record: a `settings.sampleRate` share of them, at random. */
function sampleThis(): boolean {
  if (--untilSample > 0) return false;
  untilSample = sampleGap(settings.sampleRate);
  return true;
}

/** Acquisitions up to and including the next one to record: geometric with mean 1 / rate. */
export function sampleGap(rate: number): number {
  if (rate >= 1) return 1;
  if (rate <= 0) return Infinity;
  return 1 + Math.floor(Math.log(1 - Math.random()) / Math.log(1 - rate));
}

/** A function on the stack above which a site is captured. */
export type Boundary = (...args: never[]) => unknown;

/** The caller's own boundary from options (`{ boundary }`), else `fallback` (the public function called). */
export function boundaryOf(options: { readonly boundary?: Boundary | undefined } | undefined, fallback: Boundary): Boundary {
  const given = options?.boundary;
  return typeof given === 'function' ? given : fallback;
}

// Where custodian's own modules are, so that their frames are never "the user's line". Installed,
// or run from this repository, they are files under the package's src/ and adapters/ (or dist/src,
// dist/adapters), and this module is one of them; tests and examples here are user code. Bundled
// into an app (esbuild, rolldown, webpack), they are inside the app's bundle with the app's own
// code, and with source maps their frames point at files of the app's tree: no path tells the two
// apart. None needs to: every site is captured above the public function the user called
// (`captureSite(boundary)`), so the first frame of a capture is the user's. Paths only skip what
// lies beyond that (custodian's adapters calling its core, when not bundled).
// (A CommonJS bundle has no import.meta.url: bundled, then.)
const url: unknown = import.meta.url;
const self = typeof url === 'string' && url.startsWith('file:') ? fileURLToPath(url) : '';
const layout = /^(.*?)[\\/](?:dist[\\/])?src[\\/](?:[\w-]+[\\/])?sites\.[cm]?[jt]s$/.exec(self);
const packageRoot = layout === null ? undefined : (layout[1] as string) + sep;
const libraryDirs =
  packageRoot === undefined ? [] : ['src', 'adapters', `dist${sep}src`, `dist${sep}adapters`].map((d) => packageRoot + d + sep);

/** True when custodian runs from inside an app's bundle rather than from its own files. */
export const bundled = packageRoot === undefined;

/** One stack frame: a path (ESM's `file://` URLs turned into paths), a line and a column. */
export interface Frame {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

const FRAME = /^\s*at (?:.*? \()?(.*?):(\d+):(\d+)\)?$/;
const SITE = /^(.*):(\d+):(\d+)$/;

/** Parses one line of a V8 stack (`    at fn (file:///a/b.js:3:7)`), or `undefined` if it is no frame. */
export function parseFrame(text: string): Frame | undefined {
  const match = FRAME.exec(text);
  return match === null ? undefined : { file: toPath(match[1] ?? ''), line: Number(match[2]), column: Number(match[3]) };
}

/** Parses a site as reports print it (`src/db.ts:10:5`). */
export function parseSite(site: string): Frame | undefined {
  const match = SITE.exec(site);
  return match === null ? undefined : { file: match[1] ?? '', line: Number(match[2]), column: Number(match[3]) };
}

/** The frames of a captured stack, in order. */
export function stackFrames(raw: RawSite): Frame[] {
  const frames: Frame[] = [];
  for (const line of (raw.stack ?? '').split('\n')) {
    const frame = parseFrame(line);
    if (frame !== undefined) frames.push(frame);
  }
  return frames;
}

/** True for a file of a package under node_modules. */
export function inNodeModules(file: string): boolean {
  return file.includes(`${sep}node_modules${sep}`) || file.includes('/node_modules/');
}

/** True for one of custodian's own files (when it runs from its own files, not from a bundle). */
export function isOwnFile(file: string): boolean {
  for (const dir of libraryDirs) if (file.startsWith(dir)) return true;
  return false;
}

function isLibraryFile(file: string): boolean {
  // Not a path (`node:fs`, `internal/...`, `<anonymous>`, `native`): not the user's line either.
  if (file.startsWith('node:') || !isAbsolute(file)) return true;
  return inNodeModules(file) || isOwnFile(file);
}

// Stack frames name ESM files by URL and CommonJS files by path; compare and print paths.
function toPath(file: string): string {
  if (!file.startsWith('file://')) return file;
  try {
    return fileURLToPath(file);
  } catch {
    return file;
  }
}

/** `path` relative to the working directory, when it is under it. */
export function relativeToCwd(path: string): string {
  const cwd = process.cwd() + sep;
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

/**
 * The first user frame of a captured stack as `file:line:column`, or `undefined` when every frame
 * is inside custodian, Node or `node_modules` (raise `Error.stackTraceLimit` to see further). Paths
 * are relative to the working directory; with `--enable-source-maps` (or a bundler's source maps),
 * they are those of the original sources.
 */
export function formatSite(raw: RawSite | undefined): string | undefined {
  if (raw === undefined) return undefined;
  // Cached on the capture itself: a WeakMap here kept its peak-size table after the leases died.
  if (raw.site !== undefined) return raw.site ?? undefined;
  let site: string | undefined;
  for (const line of (raw.stack ?? '').split('\n')) {
    const frame = parseFrame(line);
    if (frame === undefined || isLibraryFile(frame.file)) continue;
    site = `${relativeToCwd(frame.file)}:${frame.line}:${frame.column}`;
    break;
  }
  raw.site = site ?? null;
  return site;
}
