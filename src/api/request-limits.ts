/**
 * Request-level guards shared by REST and WebSocket: work one request may ask for, counted on
 * the raw task array before anything is validated or queued.
 */
import { isPlainObject } from '../protocol/field-rules.ts';

/** Default size when a task names none (1024 × 1024). */
const DEFAULT_PIXELS = 1024 * 1024;

/**
 * What one `imageUpload` from an http(s) URL counts toward the request's megapixels: the image
 * is fetched (up to KILN_MAX_REFERENCE_MB) and decoded, so a request cannot fan out an unbounded
 * number of outbound fetches. With the default 400 MP ceiling, 25 URL uploads fit in a request.
 */
export const URL_UPLOAD_MEGAPIXELS = 16;

/** Same test as `inputs/parse-image-reference.ts` (surrounding whitespace is trimmed there too). */
const HTTP_URL = /^\s*https?:\/\//i;

/**
 * Drops repeated `getResponse` tasks for the same taskUUID (any case) within one request: the
 * first is answered, the others would only copy the same (possibly large) answer.
 */
export function dedupeGetResponse(tasks: readonly unknown[]): unknown[] {
  const seen = new Set<string>();
  return tasks.filter((task) => {
    if (!isPlainObject(task) || task.taskType !== 'getResponse' || typeof task.taskUUID !== 'string') return true;
    const key = task.taskUUID.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const positive = (value: unknown, fallback: number): number =>
  typeof value === 'number' && Number.isFinite(value) && value >= 1 ? Math.floor(value) : fallback;

/** Images an inference task asks for before validation: a series is sized by its seriesAmount (default 4), not numberResults. */
function imagesAsked(task: Record<string, unknown>): number {
  const kling = isPlainObject(task.providerSettings) && isPlainObject(task.providerSettings.klingai) ? task.providerSettings.klingai : undefined;
  if (kling?.resultType === 'series') return Math.max(positive(kling.seriesAmount, 4), positive(task.numberResults, 1));
  return positive(task.numberResults, 1);
}

/**
 * Images × megapixels the inference tasks of a request ask for (invalid fields count as their
 * default; validation refuses them later), plus `URL_UPLOAD_MEGAPIXELS` per `imageUpload` whose
 * image is an http(s) URL.
 */
export function requestedMegapixels(tasks: readonly unknown[]): number {
  let total = 0;
  for (const task of tasks) {
    if (isPlainObject(task) && task.taskType === 'imageUpload' && typeof task.image === 'string' && HTTP_URL.test(task.image)) {
      total += URL_UPLOAD_MEGAPIXELS;
      continue;
    }
    if (!isPlainObject(task) || task.taskType !== 'imageInference') continue;
    const count = Math.min(imagesAsked(task), 1_000);
    const width = positive(task.width, 0);
    const height = positive(task.height, 0);
    const pixels = width > 0 && height > 0 ? Math.min(width * height, 1e9) : DEFAULT_PIXELS;
    total += (count * pixels) / 1_000_000;
  }
  return total;
}
