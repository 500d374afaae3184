/**
 * The production build (`npm run build`, also run by `npm install` through `prepare`):
 * compiles src/ without its tests through tsconfig.build.json, then copies every file of src/
 * that is not TypeScript (the studio lexicon's JSON, which lexicon.ts reads from beside itself
 * at run time) to the same place in the output, so `node dist/main.js` needs nothing from src/.
 *
 *   npm run build                      → dist/
 *   npm run build -- --outDir DIR      → DIR (tests build into a scratch folder this way)
 *
 * The output folder is emptied first, so a deleted source never lingers as a stale module.
 *
 * The build emits without checking types (`tsc --noCheck`): it takes about a third of the CPU
 * of a checked compile, which `npm install` and the build test pay each time. Types are
 * checked by `npm run typecheck` (every file, tests and scripts included), which `.ci/run` runs
 * before the suite. A parse error still fails the build; the few syntax errors that only
 * the checker reports (an `await` outside an async function, a `let` declared twice) do not.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { copyAssets } from './copy-assets.ts';

const ROOT = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const SRC = path.join(ROOT, 'src');

const { values } = parseArgs({ options: { outDir: { type: 'string' } } });
const outDir = path.resolve(values.outDir ?? path.join(ROOT, 'dist'));
const started = performance.now();

clean(outDir);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--noCheck', '--outDir', outDir], { cwd: ROOT, stdio: 'inherit' });
if (compiled.status !== 0) {
  process.stderr.write(`build failed: tsc exited with ${compiled.status ?? compiled.signal}\n`);
  process.exit(1);
}
const assets = copyAssets(SRC, outDir);
// Executable for ./dist/main.js run directly (the `kiln` bin of package.json is bin/kiln, which runs it with node).
chmodSync(path.join(outDir, 'main.js'), 0o755);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
process.stdout.write(`built ${path.relative(ROOT, outDir) || outDir} (${assets} data files copied) in ${seconds} s\n`);

/** Empties `dir`, refusing anything that is not an earlier build (or empty): a mistyped --outDir must not wipe a folder. */
function clean(dir: string): void {
  if (!existsSync(dir)) return;
  if (isWithin(ROOT, dir) || isWithin(dir, SRC)) {
    throw new Error(`refusing to build into ${dir}`);
  }
  const entries = readdirSync(dir);
  if (entries.length > 0 && !entries.includes('main.js')) {
    throw new Error(`${dir} is not empty and holds no earlier build (no main.js); pick another --outDir`);
  }
  rmSync(dir, { recursive: true, force: true });
}

/** True when `inner` is `outer` or lies inside it. */
function isWithin(inner: string, outer: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}
