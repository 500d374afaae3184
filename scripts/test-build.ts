/**
 * Run by `npm test` before the suite: compiles src/ with the production build (scripts/build.ts)
 * into `.kiln-test-dist/` for the child processes the tests start (test/helpers/compiled-kiln.ts
 * says why), unless the build there was already made from the same sources.
 */
import { ensureTestBuild } from '../test/helpers/compiled-kiln.ts';

ensureTestBuild();
