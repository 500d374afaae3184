/**
 * How to start a worker thread whose entry module sits beside the module that starts it, both
 * from the compiled build (`dist/`, plain `.js`) and from the sources under tsx (`.ts`).
 *
 * Compiled, the sibling `.js` file is the worker: no TypeScript loader is needed or wanted (a
 * production install may not even have tsx). Under tsx, Node 20 does not apply the inherited
 * `--import tsx` hooks to a worker's entry module ("Unknown file extension .ts"), so the worker
 * runs a two-line bootstrap instead that registers tsx's ESM hooks inside the worker first, then
 * imports the `.ts` entry. tsx is resolved here, in the parent, because an eval'd bootstrap would
 * resolve bare names from the current directory rather than from Kiln's node_modules.
 */

/** What to hand to `new Worker(entry.filename, { eval: entry.eval, … })`. */
export interface WorkerEntry {
  /** The compiled `.js` file, or (under tsx) the bootstrap's source code. */
  readonly filename: string | URL;
  /** True when `filename` is source code to evaluate (the tsx bootstrap). */
  readonly eval: boolean;
  /** True when running from the build: the worker is the sibling `.js` file, no loader involved. */
  readonly compiled: boolean;
  /**
   * The `execArgv` to start it with; `undefined` inherits the parent's flags, leaving out by itself
   * those a thread cannot take (V8's, the process's). From the build that is what a worker gets,
   * unless the main script was `--eval`'d: a thread with a file entry refuses `--input-type`, so
   * then it gets the parent's flags without those (see `threadFlags`). The tsx bootstrap gets
   * none: it registers tsx itself (an inherited `--import tsx` would only cost the thread about
   * 0.13 s of CPU more).
   */
  readonly execArgv: string[] | undefined;
}

/**
 * The worker entry `name` (a file name without extension, e.g. `'render-worker'`) beside the
 * module whose `import.meta.url` is `moduleUrl`: the sibling `.js` file when that module is
 * itself `.js`, otherwise a tsx bootstrap importing the sibling `.ts` file.
 */
export function workerEntry(moduleUrl: string, name: string): WorkerEntry {
  // pathname, not the raw URL: a loader may add a query string to the module's URL.
  if (new URL(moduleUrl).pathname.endsWith('.js')) {
    return { filename: new URL(`./${name}.js`, moduleUrl), eval: false, compiled: true, execArgv: threadFlags(process.execArgv) };
  }
  const entry = new URL(`./${name}.ts`, moduleUrl).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap =
    `import(${JSON.stringify(tsx)})` +
    `.then((api) => { api.register(); return import(${JSON.stringify(entry)}); });`;
  return { filename: bootstrap, eval: true, compiled: false, execArgv: [] };
}

/** Flags for the main script's source (`node --input-type=module --eval …`): a thread started from a file refuses them. */
const SOURCE_FLAGS = new Set(['--input-type', '--eval', '-e', '--print', '-p']);

/**
 * The flags a thread started from a compiled file gets: `undefined` (the parent's, inherited)
 * unless `execArgv` holds flags for the main script's source; then `execArgv` without them, each
 * with its value (`--flag value` or `--flag=value`). Flags given explicitly are checked by Node,
 * which refuses V8's and the process's own, so they are passed only when some must go.
 */
export function threadFlags(execArgv: readonly string[]): string[] | undefined {
  const isSource = (arg: string): boolean => SOURCE_FLAGS.has(arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg);
  if (!execArgv.some(isSource)) return undefined;
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (!isSource(arg)) kept.push(arg);
    else if (!arg.includes('=')) i++; // its value is the next argument
  }
  return kept;
}
