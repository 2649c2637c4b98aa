/**
 * Live sampled allocations by site, from V8's sampling heap profiler (node:inspector). The
 * profiler samples about one allocation per `samplingInterval` bytes, keeps a sample while its
 * object is alive (a full GC drops the dead ones) and weighs each sample so that the sum is an
 * unbiased estimate of the live bytes. V8 attributes a sample to the *function* that allocated, by
 * where that function starts: a site is `file:line:column` of the function, not of the statement.
 * Samples are grouped by the innermost frame in user code, so a leak in a library call is charged
 * to the user's line that made the call.
 */
import { Session } from 'node:inspector/promises';
import { setFlagsFromString } from 'node:v8';
import { fileURLToPath } from 'node:url';
import { findSourceMap } from 'node:module';
import { inNodeModules, isOwnFile, relativeToCwd } from '../../src/internal.js';

/** Live sampled bytes at one checkpoint, by site. */
export type SiteBytes = Map<string, { readonly functionName: string; bytes: number }>;

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}
interface ProfileNode {
  readonly callFrame: CallFrame;
  readonly selfSize: number;
  readonly children: readonly ProfileNode[];
}

/**
 * Turns off inlining in V8's optimizing compilers until the returned function turns it back on.
 * The sampling profiler names the outermost function of an optimized frame, so a callee inlined
 * into its caller would have its allocations charged to the caller (and a task inlined into the
 * soak's own loop, to no user frame at all). Code optimized before keeps its inlining: call it
 * before the first run of the task. Only the speed of the code changes, not what it retains.
 */
export function withoutInlining(): () => void {
  setFlagsFromString('--no-turbo-inlining');
  setFlagsFromString('--no-maglev-inlining');
  return () => {
    setFlagsFromString('--turbo-inlining');
    setFlagsFromString('--maglev-inlining');
  };
}

/** Where allocations made outside any user function are counted (Node's internals, the runtime). */
export const NO_USER_FRAME = '(no user frame)';

export class AllocationSampler {
  readonly #session = new Session();
  readonly #names = new Map<string, string | undefined>();

  /** Starts sampling; allocations made before are not seen. */
  async start(samplingInterval: number): Promise<void> {
    this.#session.connect();
    await this.#session.post('HeapProfiler.enable');
    await this.#session.post('HeapProfiler.startSampling', { samplingInterval });
  }

  /** The live samples now, by site. Call it right after a full GC: samples of dead objects go at GC. */
  async live(): Promise<SiteBytes> {
    const { profile } = (await this.#session.post('HeapProfiler.getSamplingProfile')) as { profile: { head: ProfileNode } };
    const out: SiteBytes = new Map();
    // Iterative walk: a deep recursion in the task is a deep profile tree.
    const stack: { node: ProfileNode; site: string; fn: string }[] = [{ node: profile.head, site: NO_USER_FRAME, fn: '' }];
    while (stack.length > 0) {
      const { node, site: outer, fn: outerFn } = stack.pop() as { node: ProfileNode; site: string; fn: string };
      const own = this.#siteOf(node.callFrame);
      const site = own ?? outer;
      const fn = own === undefined ? outerFn : node.callFrame.functionName || '(anonymous)';
      if (node.selfSize > 0) {
        const entry = out.get(site);
        if (entry === undefined) out.set(site, { functionName: fn, bytes: node.selfSize });
        else entry.bytes += node.selfSize;
      }
      for (const child of node.children) stack.push({ node: child, site, fn });
    }
    return out;
  }

  async stop(): Promise<void> {
    try {
      await this.#session.post('HeapProfiler.stopSampling');
      await this.#session.post('HeapProfiler.disable');
    } finally {
      this.#session.disconnect();
    }
  }

  /** `file:line:column` (1-based) of a frame in user code, or `undefined` for Node, node_modules and custodian. */
  #siteOf(frame: CallFrame): string | undefined {
    const key = `${frame.url}:${frame.lineNumber}:${frame.columnNumber}`;
    if (this.#names.has(key)) return this.#names.get(key);
    const name = userSite(frame);
    this.#names.set(key, name);
    return name;
  }
}

function userSite(frame: CallFrame): string | undefined {
  const { url } = frame;
  if (url === '' || url.startsWith('node:') || !(url.startsWith('file:') || url.startsWith('/'))) return undefined;
  let path: string;
  try {
    path = url.startsWith('file:') ? fileURLToPath(url) : url;
  } catch {
    return undefined;
  }
  if (inNodeModules(path) || isOwnFile(path)) return undefined;
  // Compiled code (TypeScript, a bundle) names its original source when source maps are on
  // (--enable-source-maps, or process.setSourceMapsEnabled(true) before the module loads: the CLI does).
  const entry = findSourceMap(path)?.findEntry(frame.lineNumber, frame.columnNumber);
  if (entry !== undefined && 'originalSource' in entry && typeof entry.originalSource === 'string') {
    let original = entry.originalSource;
    try {
      if (original.startsWith('file:')) original = fileURLToPath(original);
    } catch {
      // keep the URL
    }
    return `${relativeToCwd(original)}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  }
  return `${relativeToCwd(path)}:${frame.lineNumber + 1}:${frame.columnNumber + 1}`;
}
