/**
 * Run by `npm test` before the suite: compiles src/ with the production build (scripts/build.ts)
 * into `.kiln-test-dist/` for the child processes the tests start (test/helpers/compiled-kiln.ts
 * says why), unless the build there was already made from the same sources. The stamp is written
 * last, so an interrupted build is never taken for a fresh one.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { ROOT, sourceDigest, TEST_BUILD_DIR, TEST_BUILD_STAMP } from '../test/helpers/compiled-kiln.ts';

const digest = sourceDigest();
if (existsSync(TEST_BUILD_STAMP) && readFileSync(TEST_BUILD_STAMP, 'utf8').trim() === digest) {
  process.stdout.write('test build: .kiln-test-dist is up to date\n');
} else {
  // Ours alone: an interrupted earlier build may have left anything in it.
  rmSync(TEST_BUILD_DIR, { recursive: true, force: true });
  const build = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build.ts', '--outDir', TEST_BUILD_DIR], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
  writeFileSync(TEST_BUILD_STAMP, `${digest}\n`);
}
