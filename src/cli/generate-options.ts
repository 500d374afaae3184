/**
 * The options `kiln generate` and `kiln batch` share: where the server is, which key, and how
 * a prompt becomes a standard Runware `imageInference` task (nothing Kiln-only, so the same
 * command works against the hosted API).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { O3_SIZES } from '../models/model-registry.ts';

/** Exit codes of the client commands. */
export const EXIT = { ok: 0, taskFailed: 1, usage: 2, unreachable: 3, interrupted: 130 } as const;

/** A mistake in the command line or an input file (exit code 2). */
export class UsageError extends Error {}

export const DEFAULT_MODEL = 'klingai:kling-image@o3';
export const DEFAULT_SERVER = 'ws://127.0.0.1:8080/v1';
const O3_MODEL = 'klingai:kling-image@o3';
const TIERS = ['1k', '2k', '4k'] as const;
const FORMATS = { png: 'PNG', jpg: 'JPG', jpeg: 'JPG', webp: 'WEBP' } as const;
const MIME_BY_EXT: Readonly<Record<string, string>> = {
  '.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.webp': 'image/webp', '.gif': 'image/gif', '.bmp': 'image/bmp',
};
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `util.parseArgs` options of every command that talks to a server. */
export const CONNECTION_OPTIONS = {
  server: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `util.parseArgs` options that shape the task (generate and batch). */
export const TASK_OPTIONS = {
  model: { type: 'string', short: 'm' },
  size: { type: 'string' },
  aspect: { type: 'string' },
  tier: { type: 'string' },
  n: { type: 'string', short: 'n' },
  format: { type: 'string' },
  quality: { type: 'string' },
  seed: { type: 'string' },
  ref: { type: 'string', multiple: true },
  out: { type: 'string', short: 'o' },
} as const;

/** What shapes one task; every field optional (batch lines override the command line). */
export interface TaskSettings {
  model?: string | undefined;
  size?: string | undefined;
  aspect?: string | undefined;
  tier?: string | undefined;
  n?: string | number | undefined;
  format?: string | undefined;
  quality?: string | number | undefined;
  seed?: string | number | undefined;
  ref?: readonly string[] | undefined;
}

/** A task ready to send, with what the command needs to name its files. */
export interface PreparedTask {
  readonly task: Record<string, unknown> & { taskUUID: string; numberResults: number };
  /** File extension of the outputs: `png`, `jpg` or `webp`. */
  readonly ext: string;
  readonly width: number | undefined;
  readonly height: number | undefined;
}

function integer(value: string | number | undefined, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const number = typeof value === 'number' ? value : /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isInteger(number) || number < min || number > max) throw new UsageError(`${name} must be a whole number from ${min} to ${max} (got '${value}')`);
  return number;
}

const o3List = (): string =>
  Object.entries(O3_SIZES)
    .map(([aspect, sizes]) => `${aspect}: ${sizes.map(([w, h]) => `${w}x${h}`).join(' ')}`)
    .join('; ');

/** `--size WxH`, or `--aspect A --tier T` looked up in the O3 size table. */
export function resolveSize(settings: TaskSettings): { width: number; height: number } | undefined {
  const model = settings.model ?? DEFAULT_MODEL;
  if (settings.size !== undefined) {
    if (settings.aspect !== undefined || settings.tier !== undefined) throw new UsageError('use either --size or --aspect/--tier, not both');
    const match = /^(\d+)[x×X](\d+)$/.exec(settings.size.trim());
    if (!match) throw new UsageError(`--size must look like 2496x1664 (got '${settings.size}')`);
    const width = Number(match[1]);
    const height = Number(match[2]);
    if (model === O3_MODEL && !Object.values(O3_SIZES).some((sizes) => sizes.some(([w, h]) => w === width && h === height))) {
      throw new UsageError(`${width}x${height} is not a size of ${O3_MODEL}; the sizes are ${o3List()}`);
    }
    if (width < 1 || height < 1) throw new UsageError(`--size must be positive (got '${settings.size}')`);
    return { width, height };
  }
  if (settings.aspect === undefined && settings.tier === undefined) return undefined;
  const aspect = settings.aspect ?? '1:1';
  const sizes = (O3_SIZES as Readonly<Record<string, readonly (readonly [number, number])[]>>)[aspect];
  if (!sizes) throw new UsageError(`--aspect must be one of ${Object.keys(O3_SIZES).join(', ')} (got '${aspect}')`);
  const tier = (settings.tier ?? '1k').toLowerCase();
  const index = (TIERS as readonly string[]).indexOf(tier);
  if (index < 0) throw new UsageError(`--tier must be one of ${TIERS.join(', ')} (got '${settings.tier}')`);
  const [width, height] = sizes[index] as readonly [number, number];
  return { width, height };
}

/** A `--ref`: URLs, data URIs and image UUIDs as they are; a local file as a data URI. */
export async function referenceValue(ref: string, baseDir: string): Promise<string> {
  if (/^https?:\/\//i.test(ref) || ref.startsWith('data:') || UUID.test(ref)) return ref;
  const file = path.resolve(baseDir, ref);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new UsageError(`cannot read reference image ${ref}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const mime = MIME_BY_EXT[path.extname(file).toLowerCase()] ?? 'image/png';
  return `data:${mime};base64,${bytes.toString('base64')}`;
}

/** Builds the imageInference task for `prompt` (throws `UsageError` for bad settings). */
export async function prepareTask(prompt: string, settings: TaskSettings, baseDir: string): Promise<PreparedTask> {
  if (prompt.trim() === '') throw new UsageError('the prompt is empty');
  const size = resolveSize(settings);
  const numberResults = integer(settings.n, '-n', 1, 20) ?? 1;
  const formatName = (settings.format ?? 'jpg').toLowerCase();
  const outputFormat = (FORMATS as Readonly<Record<string, string>>)[formatName];
  if (!outputFormat) throw new UsageError(`--format must be png, jpg or webp (got '${settings.format}')`);
  const quality = integer(settings.quality, '--quality', 20, 99);
  const seed = integer(settings.seed, '--seed', 1, 2 ** 31 - 1);
  const references = await Promise.all((settings.ref ?? []).map((ref) => referenceValue(ref, baseDir)));
  const task: PreparedTask['task'] = {
    taskType: 'imageInference',
    taskUUID: randomUUID(),
    model: settings.model ?? DEFAULT_MODEL,
    positivePrompt: prompt,
    ...(size ?? {}),
    numberResults,
    outputType: 'base64Data',
    outputFormat,
    ...(quality === undefined ? {} : { outputQuality: quality }),
    ...(seed === undefined ? {} : { seed }),
    ...(references.length > 0 ? { inputs: { referenceImages: references } } : {}),
    includeCost: true,
  };
  return { task, ext: outputFormat.toLowerCase(), width: size?.width, height: size?.height };
}

/** `--server`, else KILN_SERVER, else the local default; http(s) becomes ws(s), a bare host gets `/v1`. */
export function serverUrl(option: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  const raw = option ?? env.KILN_SERVER ?? DEFAULT_SERVER;
  let url: URL;
  try {
    url = new URL(/^[a-z]+:\/\//i.test(raw) ? raw : `ws://${raw}`);
  } catch {
    throw new UsageError(`--server is not a URL: '${raw}'`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new UsageError(`--server must be a ws://, wss://, http:// or https:// URL (got '${raw}')`);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1';
  return url.toString();
}

function isLocal(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === '127.0.0.1' || host === 'localhost' || host === '::1';
}

/**
 * The API key: `--key`, else KILN_KEY, else RUNWARE_API_KEY, else — for a server on this
 * machine — the first line of `<KILN_DATA_DIR or ./data>/api-key.txt`.
 */
export function apiKey(option: string | undefined, env: Readonly<Record<string, string | undefined>>, server: string, cwd: string): string {
  const key = option ?? env.KILN_KEY ?? env.RUNWARE_API_KEY;
  if (key !== undefined && key.trim() !== '') return key.trim();
  if (isLocal(server)) {
    const file = path.resolve(cwd, env.KILN_DATA_DIR ?? 'data', 'api-key.txt');
    try {
      const first = readFileSync(file, 'utf8').split('\n')[0]?.trim();
      if (first) return first;
    } catch {
      // fall through to the usage message
    }
  }
  throw new UsageError(
    'no API key: pass --key, or set KILN_KEY (for a local server: export KILN_KEY=$(head -n1 data/api-key.txt))',
  );
}
