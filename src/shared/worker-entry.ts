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
}

/**
 * The worker entry `name` (a file name without extension, e.g. `'render-worker'`) beside the
 * module whose `import.meta.url` is `moduleUrl`: the sibling `.js` file when that module is
 * itself `.js`, otherwise a tsx bootstrap importing the sibling `.ts` file.
 */
export function workerEntry(moduleUrl: string, name: string): WorkerEntry {
  // pathname, not the raw URL: a loader may add a query string to the module's URL.
  if (new URL(moduleUrl).pathname.endsWith('.js')) {
    return { filename: new URL(`./${name}.js`, moduleUrl), eval: false, compiled: true };
  }
  const entry = new URL(`./${name}.ts`, moduleUrl).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap =
    `import(${JSON.stringify(tsx)})` +
    `.then((api) => { api.register(); return import(${JSON.stringify(entry)}); });`;
  return { filename: bootstrap, eval: true, compiled: false };
}
