/**
 * How tests start `kiln` as a child process. Under tsx a child spends about 2 s more CPU on its
 * start than the compiled build does (tsx's module hooks run once for the process and once per
 * worker thread), and the suite starts dozens of children. So `npm test` first compiles src/ with
 * the production build into `.kiln-test-dist/` (scripts/test-build.ts), stamped with a digest of
 * everything the build reads; children run that when its stamp matches the sources on disk, and
 * the sources under tsx otherwise (a single test file run by hand after an edit, say). A stale
 * build is never used.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Where `npm test` builds; git-ignored (`.kiln-test-*`), at the top like dist/ so packages resolve the same way. */
export const TEST_BUILD_DIR = path.join(ROOT, '.kiln-test-dist');
/** Holds the digest of the sources the build in TEST_BUILD_DIR was made from. */
export const TEST_BUILD_STAMP = path.join(TEST_BUILD_DIR, '.sources');
/** What the build's output depends on, besides src/. */
const BUILD_INPUTS = ['tsconfig.json', 'tsconfig.build.json', 'scripts/build.ts', 'package.json', 'node_modules/typescript/package.json'];

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(full) : [full];
  });
}

/** A digest of every file the build reads (names and contents). */
export function sourceDigest(): string {
  const hash = createHash('sha256');
  const files = [...filesUnder(path.join(ROOT, 'src')), ...BUILD_INPUTS.map((file) => path.join(ROOT, file))].sort();
  for (const file of files) {
    hash.update(path.relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  }
  return hash.digest('hex');
}

/** True when TEST_BUILD_DIR holds a complete build stamped with `digest`. */
function builtFrom(digest: string): boolean {
  return existsSync(path.join(TEST_BUILD_DIR, 'main.js')) && existsSync(TEST_BUILD_STAMP) && readFileSync(TEST_BUILD_STAMP, 'utf8').trim() === digest;
}

let cached: string | null | undefined;

/** The compiled `main.js` when `.kiln-test-dist/` was built from the sources as they are now, else undefined. */
export function compiledMain(): string | undefined {
  if (cached === undefined) cached = builtFrom(sourceDigest()) ? path.join(TEST_BUILD_DIR, 'main.js') : null;
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
  const build = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), 'scripts/build.ts', '--outDir', TEST_BUILD_DIR], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
  writeFileSync(TEST_BUILD_STAMP, `${digest}\n`);
  cached = undefined;
}
