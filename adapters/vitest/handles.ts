/**
 * The optional runtime-handle check: timers, sockets, servers, file handles, child processes and
 * watchers a run started and left running. Off by default: it installs an async_hooks `init`
 * hook, which Node then calls for every async resource the process creates, promises included
 * (cost measured in docs/testing.md#cost).
 *
 * A handle counts as left running while it would keep the process alive (`hasRef()`): an unref'd
 * timer or an idle keep-alive socket (Node's and undici's agents unref them) is not reported. It is
 * charged only to the run whose own async context created it: a socket a server accepted belongs
 * to whoever started the server.
 */
import { createHook, type AsyncHook } from 'node:async_hooks';
import { isAbsolute, sep } from 'node:path';
import { formatSite, isOwnFile, relativeToCwd, stackFrames, type RawSite } from '../../src/internal.js';
import { currentRun, type Run } from './runs.js';
import { now } from './clock.js';

/** The async_hooks resource types worth reporting, and the kind each is reported as. */
const KINDS: Readonly<Record<string, string>> = {
  Timeout: 'timer',
  TCPWRAP: 'socket',
  PIPEWRAP: 'socket',
  TCPSERVERWRAP: 'server',
  PIPESERVERWRAP: 'server',
  UDPWRAP: 'udp socket',
  FILEHANDLE: 'file handle',
  PROCESSWRAP: 'child process',
  FSEVENTWRAP: 'watcher',
  STATWATCHER: 'watcher',
};

/**
 * Node creates some handles with none of the caller's frames on the stack (`server.listen(port,
 * host)` creates its handle a tick later). So the stacks of the other async resources a run
 * creates (ticks, requests; not promises) are kept until they are destroyed, and a handle with no
 * user frame takes the line of the nearest resource up its trigger chain that has one.
 */
interface Forerunner {
  readonly raw: RawSite;
  readonly trigger: number;
}

interface Handle {
  readonly kind: string;
  readonly run: Run;
  readonly resource: WeakRef<object>;
  readonly raw: RawSite;
  readonly t0: number;
}

/** A handle still running, as the check reports it. */
export interface LiveHandle {
  readonly kind: string;
  readonly site: string | undefined;
  /** Where it was created when that is not in the user's code: a library file, or Node itself. */
  readonly via: string | undefined;
  readonly heldMs: number;
}

const live = new Map<number, Handle>();
const forerunners = new Map<number, Forerunner>();
let hook: AsyncHook | undefined;

function init(asyncId: number, type: string, trigger: number, resource: object): void {
  if (type === 'PROMISE') return;
  const run = currentRun();
  if (run === undefined || run.kind === 'file') return;
  const raw: RawSite = {};
  Error.captureStackTrace(raw, init);
  const kind = KINDS[type];
  if (kind === undefined) forerunners.set(asyncId, { raw, trigger });
  else live.set(asyncId, { kind, run, resource: new WeakRef(resource), raw: withUserFrame(raw, trigger), t0: now() });
}

/** `raw` when it has a frame of the user's, else the first such stack up the trigger chain (or `raw`). */
function withUserFrame(raw: RawSite, trigger: number): RawSite {
  if (formatSite(raw) !== undefined) return raw;
  for (let id = trigger, depth = 0; depth < 20; depth++) {
    const up = forerunners.get(id);
    if (up === undefined) break;
    if (formatSite(up.raw) !== undefined) return up.raw;
    id = up.trigger;
  }
  return raw;
}

function destroy(asyncId: number): void {
  live.delete(asyncId);
  forerunners.delete(asyncId);
}

let users = 0;

/**
 * Starts tracking handles (if nobody else has) and returns the function that stops this use of it.
 * When the last use stops, the hook is removed and what was tracked forgotten.
 */
export function useHandleTracking(): () => void {
  if (users++ === 0) hook = createHook({ init, destroy }).enable();
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--users === 0) {
      hook?.disable();
      hook = undefined;
      live.clear();
      forerunners.clear();
    }
  };
}

/** Whether the resource still runs and keeps the process alive. */
function isRunning(resource: object | undefined): boolean {
  if (resource === undefined) return false;
  const r = resource as { hasRef?: () => boolean; fd?: number; _destroyed?: boolean };
  if (typeof r.fd === 'number') return r.fd >= 0; // a FileHandle: closed ones have fd -1
  if (r._destroyed === true) return false; // a fired setTimeout whose destroy hook has not run yet
  return typeof r.hasRef === 'function' ? r.hasRef() : true;
}

/** The handles `run` created that still run, oldest first; one with no frame of the user's names the library or Node code that created it. */
export function handlesOf(run: Run, at: number): LiveHandle[] {
  const found: LiveHandle[] = [];
  for (const [asyncId, handle] of live) {
    if (handle.run !== run) continue;
    const resource = handle.resource.deref();
    if (!isRunning(resource)) {
      if (resource === undefined) live.delete(asyncId);
      continue;
    }
    const site = formatSite(handle.raw);
    const repeating = handle.kind === 'timer' && (resource as { _repeat?: unknown })._repeat != null;
    found.push({
      kind: repeating ? 'interval' : handle.kind,
      site,
      via: site === undefined ? libraryFrame(handle.raw) : undefined,
      heldMs: at - handle.t0,
    });
  }
  return found;
}

/**
 * A handle created with none of the user's frames on its stack was created by a library (an
 * ioredis client's socket, after a turn of the event loop) or by Node: name the first file frame.
 */
function libraryFrame(raw: RawSite): string {
  for (const frame of stackFrames(raw)) {
    if (!isAbsolute(frame.file) || isOwnFile(frame.file)) continue;
    const at = frame.file.lastIndexOf(`node_modules${sep}`);
    return `created in ${at === -1 ? relativeToCwd(frame.file) : frame.file.slice(at)}:${frame.line}`;
  }
  return 'created by Node itself, with no frame of the test on its stack';
}

/** Forgets the handles of runs that ended; what is left is not looked at again. */
export function forgetHandles(run: Run): void {
  for (const [asyncId, handle] of live) if (handle.run === run) live.delete(asyncId);
}
