import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** Copies the files of `from` that tsc does not compile (anything but .ts) into `to`, keeping paths; returns how many. */
export function copyAssets(from: string, to: string): number {
  let count = 0;
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, entry.name);
    if (entry.isDirectory()) {
      count += copyAssets(source, target);
    } else if (entry.isFile() && !entry.name.endsWith('.ts')) {
      mkdirSync(to, { recursive: true });
      copyFileSync(source, target);
      count++;
    }
  }
  return count;
}
