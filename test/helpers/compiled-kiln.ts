/**
 * The compiled suite. Under tsx every process pays for tsx's module hooks: about 1–2 s more CPU
 * for a `kiln` child's start or a test file's own process than compiled JavaScript, and the
 * suite runs dozens of each. So `npm test` first compiles the repository's TypeScript (src/,
 * test/ and scripts/, with the production build's settings: tsconfig.test-build.json) into
 * `.kiln-test-dist/` (scripts/test-build.ts), copies the data files of src/ and test/ beside
 * it (and package.json, which the server reads its version from), and stamps it with a digest
 * of everything the build reads. It then runs the compiled test files with plain node; their
 * servers and worker threads are compiled code as in production. The `kiln` children that
 * tests start run `.kiln-test-dist/src/main.js` when the stamp matches the sources on disk, and
 * the sources under tsx otherwise (a single test file run by hand from its `.ts` after an
 * edit, say). A stale build is never used: `npm test` rebuilds it first.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { copyAssets } from '../../scripts/copy-assets.ts';
import { REPO_ROOT } from './repo-root.ts';

export const ROOT = REPO_ROOT;
/** Where `npm test` builds; git-ignored (`.kiln-test-*`), inside the repository so packages resolve as from the sources. */
export const TEST_BUILD_DIR = path.join(ROOT, '.kiln-test-dist');
/** Holds the digest of the sources the build in TEST_BUILD_DIR was made from. */
export const TEST_BUILD_STAMP = path.join(TEST_BUILD_DIR, '.sources');
/** The folders compiled, each to the same place under TEST_BUILD_DIR. */
const COMPILED = ['src', 'test', 'scripts'];
/** What the build's output depends on, besides those folders. */
const BUILD_INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'tsconfig.test-build.json', 'package.json', 'node_modules/typescript/package.json'];

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(full) : [full];
  });
}

/** A digest of every file the build reads (names and contents). */
export function sourceDigest(): string {
  const hash = createHash('sha256');
  const files = [...COMPILED.flatMap((dir) => filesUnder(path.join(ROOT, dir))), ...BUILD_INPUTS.map((file) => path.join(ROOT, file))].sort();
  for (const file of files) {
    hash.update(path.relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

/** True when TEST_BUILD_DIR holds a complete build stamped with `digest`. */
function builtFrom(digest: string): boolean {
  return existsSync(path.join(TEST_BUILD_DIR, 'src', 'main.js')) && existsSync(TEST_BUILD_STAMP) && readFileSync(TEST_BUILD_STAMP, 'utf8').trim() === digest;
}

let cached: string | null | undefined;

/** The compiled `main.js` when `.kiln-test-dist/` was built from the sources as they are now, else undefined. */
export function compiledMain(): string | undefined {
  if (cached === undefined) cached = builtFrom(sourceDigest()) ? path.join(TEST_BUILD_DIR, 'src', 'main.js') : null;
  return cached ?? undefined;
}

/** Node's arguments that run `kiln` (before the command's own): the fresh build, else the sources under tsx. */
export function kilnNodeArgs(): string[] {
  const main = compiledMain();
  // tsx resolved here: a bare `--import tsx` would be looked up from the child's working folder.
  return main ? ['--enable-source-maps', main] : ['--import', import.meta.resolve('tsx'), path.join(ROOT, 'src/main.ts')];
}

/**
 * Builds `.kiln-test-dist/` unless it was already built from the sources as they are now; exits
 * the process if the build fails. The stamp is written last, so an interrupted build is never
 * taken for a fresh one.
 */
export function ensureTestBuild(): void {
  const digest = sourceDigest();
  if (builtFrom(digest)) {
    process.stdout.write('test build: .kiln-test-dist is up to date\n');
    return;
  }
  // Ours alone: an interrupted earlier build may have left anything in it.
  rmSync(TEST_BUILD_DIR, { recursive: true, force: true });
  const started = performance.now();
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const build = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.test-build.json', '--noCheck', '--outDir', TEST_BUILD_DIR], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
  // Data files read from beside a module (the studio lexicon, test fixtures).
  let assets = 0;
  for (const dir of ['src', 'test']) assets += copyAssets(path.join(ROOT, dir), path.join(TEST_BUILD_DIR, dir));
  // Read from two folders above src/api (the server's version), as dist/ has it.
  copyFileSync(path.join(ROOT, 'package.json'), path.join(TEST_BUILD_DIR, 'package.json'));
  process.stdout.write(`test build: compiled src, test and scripts into .kiln-test-dist (${assets} data files copied) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  writeFileSync(TEST_BUILD_STAMP, `${digest}\n`);
  cached = undefined;
}
