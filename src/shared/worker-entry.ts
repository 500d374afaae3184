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
 *
 * Registering tsx in a thread costs it about half a second of CPU before its first message. So,
 * from the sources, `KILN_WORKER_BUILD` may name a compiled build of `src/` (the same tree,
 * `.js`): a thread then starts from its entry's twin there, with no loader, when that file
 * exists. `npm test` points it at the build it has just made from the same sources
 * (`.kiln-test-dist/`); it is a developer's setting, never needed in production, where Kiln runs
 * from `dist/` and every thread starts from its sibling `.js` file anyway.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The `src/` folder (this file is `src/shared/worker-entry.*`). */
const SOURCE_ROOT = fileURLToPath(new URL('../', import.meta.url));

/** What to hand to `new Worker(entry.filename, { eval: entry.eval, … })`. */
export interface WorkerEntry {
  /** The compiled `.js` file, or (under tsx) the bootstrap's source code. */
  readonly filename: string | URL;
  /** True when `filename` is source code to evaluate (the tsx bootstrap). */
  readonly eval: boolean;
  /** True when the worker is a compiled `.js` file (its sibling in the build, or its twin), no loader involved. */
  readonly compiled: boolean;
  /**
   * The `execArgv` to start it with; `undefined` inherits the parent's flags (from the build). The
   * tsx bootstrap registers tsx itself and the twin needs no loader, so neither gets the parent's
   * loader flags (an inherited `--import tsx` alone costs a thread about 0.13 s of CPU); the twin
   * keeps those of the parent's flags that make sense in a thread (`--enable-source-maps`, …).
   */
  readonly execArgv?: string[];
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
  const twin = compiledTwin(moduleUrl, name);
  if (twin) return { filename: twin, eval: false, compiled: true, execArgv: threadFlags(process.execArgv) };
  const entry = new URL(`./${name}.ts`, moduleUrl).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap =
    `import(${JSON.stringify(tsx)})` +
    `.then((api) => { api.register(); return import(${JSON.stringify(entry)}); });`;
  return { filename: bootstrap, eval: true, compiled: false, execArgv: [] };
}

/**
 * `<KILN_WORKER_BUILD>/<folder of moduleUrl under src/>/<name>.js`, when the variable is set, the
 * module lies under `src/` and that file exists; otherwise `undefined`.
 */
export function compiledTwin(moduleUrl: string, name: string, build = process.env.KILN_WORKER_BUILD): URL | undefined {
  if (!build) return undefined;
  const folder = path.relative(SOURCE_ROOT, fileURLToPath(new URL('./', moduleUrl)));
  if (folder.startsWith('..') || path.isAbsolute(folder)) return undefined;
  const file = path.join(path.resolve(build), folder, `${name}.js`);
  return existsSync(file) ? pathToFileURL(file) : undefined;
}

/** Flags a thread started from a compiled file can use; the rest (loaders, `--input-type`, `--eval`, V8's own) stay with the parent. */
const THREAD_FLAGS = new Set(['--enable-source-maps', '--no-warnings', '--no-deprecation', '--trace-warnings', '--trace-deprecation', '--trace-uncaught']);
/** The same for flags with a value, kept in their `--flag=value` spelling. */
const THREAD_VALUE_FLAGS = new Set(['--unhandled-rejections', '--conditions']);

/** The flags of `execArgv` (the parent's) that a compiled twin's thread gets: see THREAD_FLAGS. */
export function threadFlags(execArgv: readonly string[]): string[] {
  return execArgv.filter((arg) => {
    const equals = arg.indexOf('=');
    return equals < 0 ? THREAD_FLAGS.has(arg) : THREAD_VALUE_FLAGS.has(arg.slice(0, equals));
  });
}
