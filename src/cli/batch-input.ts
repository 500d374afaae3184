/**
 * The input of `kiln batch`: one prompt per line (`.txt`), or one JSON object per line
 * (`.jsonl`: `{"prompt": …}` plus per-line overrides). Blank lines and `#` comments are skipped
 * but keep their line numbers, so file names stay stable when the file is edited below them.
 */
import { UsageError, type TaskSettings } from './generate-options.ts';

export interface BatchLine {
  /** 1-based line number in the input file. */
  readonly line: number;
  readonly prompt: string;
  readonly overrides: TaskSettings;
}

const OVERRIDES = ['model', 'size', 'aspect', 'tier', 'n', 'format', 'quality', 'seed', 'ref'] as const;

function override(value: unknown, field: string, line: number): string | number | readonly string[] {
  if (field === 'ref') {
    const refs = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(refs) || !refs.every((ref) => typeof ref === 'string')) throw new UsageError(`line ${line}: "ref" must be a string or an array of strings`);
    return refs as string[];
  }
  if (typeof value === 'string' || (typeof value === 'number' && ['n', 'quality', 'seed'].includes(field))) return value;
  throw new UsageError(`line ${line}: "${field}" must be ${['n', 'quality', 'seed'].includes(field) ? 'a number' : 'a string'}`);
}

/** Parses the whole input first, so a mistake on line 90 stops the batch before it starts. */
export function parseBatchInput(text: string, jsonl: boolean): BatchLine[] {
  const lines: BatchLine[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#') || (jsonl && trimmed.startsWith('//'))) return;
    if (!jsonl) {
      lines.push({ line, prompt: trimmed, overrides: {} });
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new UsageError(`line ${line} is not JSON`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`line ${line} is not a JSON object`);
    const record = parsed as Record<string, unknown>;
    if (typeof record.prompt !== 'string' || record.prompt.trim() === '') throw new UsageError(`line ${line} needs a "prompt" string`);
    const overrides: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(record)) {
      if (field === 'prompt') continue;
      if (!(OVERRIDES as readonly string[]).includes(field)) {
        throw new UsageError(`line ${line}: unknown field "${field}" (allowed: prompt, ${OVERRIDES.join(', ')})`);
      }
      overrides[field] = override(value, field, line);
    }
    lines.push({ line, prompt: record.prompt, overrides: overrides as TaskSettings });
  });
  return lines;
}
