/**
 * The repository's root folder. Tests run from their sources (test/…, under tsx) or, under
 * `npm test`, from the compiled suite in `.kiln-test-dist/` (compiled-kiln.ts), where a path
 * relative to the module lands inside the build. What is not compiled (docs, package.json, the
 * `.ts` files a test runs in a child process) is reached from here instead.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'src', 'main.ts'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no repository root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export const REPO_ROOT = findRoot();
