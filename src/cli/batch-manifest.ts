/**
 * `manifest.jsonl` of a batch folder: one line per image (line, k, file, imageUUID, seed,
 * cost, prompt). Lines are appended as images arrive — before the image file is renamed into
 * place, so a file never exists without its entry — and the manifest is compacted at the end:
 * entries whose file is missing are dropped, a regenerated image replaces its old entry.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './image-files.ts';

export interface ManifestEntry {
  readonly line: number;
  readonly k: number;
  /** File name relative to the manifest's folder. */
  readonly file: string;
  readonly imageUUID: string;
  readonly seed: number | null;
  readonly cost: number | null;
  readonly prompt: string;
}

export class BatchManifest {
  readonly file: string;

  constructor(private readonly dir: string) {
    this.file = path.join(dir, 'manifest.jsonl');
  }

  /** Entries already in the file (lines that do not parse, such as a torn last line, are skipped). */
  async read(): Promise<ManifestEntry[]> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return [];
    }
    const entries: ManifestEntry[] = [];
    for (const raw of text.split('\n')) {
      try {
        const entry = JSON.parse(raw) as ManifestEntry;
        if (typeof entry.line === 'number' && typeof entry.k === 'number' && typeof entry.file === 'string') entries.push(entry);
      } catch {
        // a torn or blank line
      }
    }
    return entries;
  }

  async append(entry: ManifestEntry): Promise<void> {
    await appendFile(this.file, `${JSON.stringify(entry)}\n`);
  }

  /** Rewrites the manifest: one entry per existing file, the latest for each (line, k), in order. */
  async compact(): Promise<ManifestEntry[]> {
    const latest = new Map<string, ManifestEntry>();
    for (const entry of await this.read()) latest.set(`${entry.line}-${entry.k}`, entry);
    const kept = [...latest.values()]
      .filter((entry) => existsSync(path.join(this.dir, entry.file)))
      .sort((a, b) => a.line - b.line || a.k - b.k);
    await writeFileAtomic(this.file, Buffer.from(kept.map((entry) => `${JSON.stringify(entry)}\n`).join('')));
    return kept;
  }
}
