/**
 * glibc's allocator settings Kiln runs with. `bin/tuned` sets them (as GLIBC_TUNABLES) for
 * `npm start`, the `kiln` command, `npm test` and `npm run bench`; glibc reads them only when a
 * process starts, so a process cannot set them for itself. Why they matter, measured on the 2-core
 * machine (docs/configuration.md, "Memory allocator"): glibc's defaults give every image's
 * buffers fresh pages from the kernel (a page fault each 4 KiB, several microseconds each on that
 * virtual machine) and give each thread an arena of its own that has to grow before it is fast.
 */
export const KILN_MALLOC_TUNABLES = 'glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=134217728';

/**
 * The warning a server logs when it runs on glibc and nobody set its allocator (started as
 * `node dist/main.js` rather than through `bin/kiln`), or undefined. Any `glibc.malloc.` setting
 * in GLIBC_TUNABLES counts as a choice; other C libraries have nothing to tune here.
 */
export function untunedAllocatorWarning(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (process.platform !== 'linux' || /(^|:)glibc\.malloc\./.test(env.GLIBC_TUNABLES ?? '')) return undefined;
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  if (!header?.glibcVersionRuntime) return undefined;
  return `glibc's allocator runs on its defaults: large images take longer and the first requests after a start are slower. Start Kiln with \`npm start\` or \`bin/kiln\`, or set GLIBC_TUNABLES=${KILN_MALLOC_TUNABLES} (docs/configuration.md)`;
}
