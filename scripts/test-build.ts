/**
 * Run by `npm test` before the suite: compiles src/, test/ and scripts/ into `.kiln-test-dist/`,
 * where the suite then runs with plain node (test/helpers/compiled-kiln.ts says why), unless the
 * build there was already made from the same sources.
 */
import { ensureTestBuild } from '../test/helpers/compiled-kiln.ts';

ensureTestBuild();
