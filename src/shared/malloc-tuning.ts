/**
 * glibc's allocator settings are made by `bin/tuned` (GLIBC_TUNABLES) for `npm start`, the `kiln`
 * command, `npm test`, `npm run bench`, `soak` and `cluster`; glibc reads them only when a process
 * starts, so a process cannot set them for itself. Why they matter, measured on the 2-core machine
 * (docs/configuration.md, "Memory allocator"): glibc's defaults give every image's buffers fresh
 * pages from the kernel (a page fault each 4 KiB, about 10 µs each on that virtual machine) and
 * give each thread an arena of its own that has to grow before it is fast.
 */

/** glibc's older variables for the same settings; an operator who set one of them made a choice. */
const MALLOC_VARIABLES = ['MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'MALLOC_MMAP_MAX_'] as const;

let onGlibc: boolean | undefined;

/**
 * The warning a server logs when it runs on glibc and nobody set its allocator (started as
 * `node dist/main.js` rather than through `bin/kiln`), or undefined. Any `glibc.malloc.` setting
 * in GLIBC_TUNABLES or any MALLOC_* variable counts as a choice; other C libraries have nothing
 * to tune here.
 */
export function untunedAllocatorWarning(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (process.platform !== 'linux' || /(^|:)glibc\.malloc\./.test(env.GLIBC_TUNABLES ?? '')) return undefined;
  if (MALLOC_VARIABLES.some((name) => env[name] !== undefined)) return undefined;
  // A process report takes a few milliseconds; the C library does not change while it runs.
  onGlibc ??= Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);
  if (!onGlibc) return undefined;
  return "glibc's allocator runs on its defaults: large images take longer and the first requests after a start are slower. Start Kiln with `npm start` or `bin/kiln`, run it through `bin/tuned`, or set GLIBC_TUNABLES as docs/configuration.md (\"Memory allocator\") says";
}
