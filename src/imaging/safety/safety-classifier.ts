import type { Logger } from '../../shared/logger.ts';
import { toModelInput, type SafetyImage } from './model-input.ts';
import { NSFW_CLASSES, type NsfwClass, type NsfwProbabilities } from './safety-protocol.ts';
import { WorkerClient } from './worker-client.ts';

export type { SafetyImage } from './model-input.ts';
export { NSFW_CLASSES, type NsfwClass, type NsfwProbabilities } from './safety-protocol.ts';

/** The classes whose probabilities add up to the adult-content score unless configured otherwise. */
export const DEFAULT_ADULT_CLASSES: readonly NsfwClass[] = ['Porn', 'Hentai'];

/** The default threshold on the adult-content score. */
export const DEFAULT_NSFW_THRESHOLD = 0.5;

export interface SafetyClassifierOptions {
  /**
   * An image is flagged when its score (the summed probability of `adultClasses`) is at least
   * this value. 0…1, default 0.5: flagged when the adult classes together are more likely than
   * all the others. 0 flags every image; 1 flags only near-certain ones.
   */
  readonly threshold?: number;
  /**
   * The model classes summed into the score. Default `['Porn', 'Hentai']`. Adding `'Sexy'`
   * (suggestive, not explicit: swimwear, lingerie) makes the check much stricter.
   */
  readonly adultClasses?: readonly NsfwClass[];
  /** How long `close()` lets accepted checks finish before failing them, in ms. Default 5000. */
  readonly closeTimeoutMs?: number;
  /** Inferences the worker runs after loading so the first real check is at full speed. Default 3. */
  readonly warmUpRuns?: number;
  /** Receives one line when the model has loaded (never image content). */
  readonly logger?: Logger;
}

export interface SafetyVerdict {
  /** `score >= threshold`. */
  readonly nsfw: boolean;
  /** Summed probability of the adult classes, 0…1. */
  readonly score: number;
  /** All five class probabilities (they sum to 1). */
  readonly probabilities: NsfwProbabilities;
  /** Wall time of this check: downscale, waiting for the worker (and the model load, on a first check without `warmUp()`), inference. */
  readonly ms: number;
  /** Of which the downscale to 224×224. */
  readonly downscaleMs: number;
  /** Of which the model inference inside the worker. */
  readonly inferenceMs: number;
}

export interface ClassifyOptions {
  /** Abandons the check (a queued one never runs); the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * An NSFW image classifier: nsfwjs's bundled MobileNetV2 on TensorFlow.js's WASM backend, in one
 * worker thread, loaded lazily on the first `classify()` or `warmUp()`. Works offline.
 */
export interface SafetyClassifier {
  readonly threshold: number;
  readonly adultClasses: readonly NsfwClass[];
  /** Classifies one image. Checks queue for the single worker; downscaling runs in parallel. */
  classify(image: SafetyImage, options?: ClassifyOptions): Promise<SafetyVerdict>;
  /** Loads the model now (1–2 s) instead of on the first check; rejects if it cannot load. */
  warmUp(): Promise<void>;
  /** Finishes accepted checks (bounded by `closeTimeoutMs`) and terminates the worker. Idempotent. */
  close(): Promise<void>;
}

export function createSafetyClassifier(options: SafetyClassifierOptions = {}): SafetyClassifier {
  const threshold = options.threshold ?? DEFAULT_NSFW_THRESHOLD;
  if (!Number.isFinite(threshold) || threshold < 0 || threshold > 1) {
    throw new RangeError(`safety threshold must be between 0 and 1, got ${threshold}`);
  }
  const adultClasses = [...new Set(options.adultClasses ?? DEFAULT_ADULT_CLASSES)];
  const unknown = adultClasses.filter((name) => !NSFW_CLASSES.includes(name));
  if (adultClasses.length === 0 || unknown.length > 0) {
    throw new RangeError(`safety adultClasses must name some of ${NSFW_CLASSES.join(', ')}; got ${adultClasses.join(', ') || 'none'}`);
  }
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  const logger = options.logger;
  const client = new WorkerClient({
    warmUpRuns: options.warmUpRuns ?? 3,
    ...(logger && { onReady: (info) => logger.info({ ...info, adultClasses, threshold }, 'safety classifier loaded') }),
  });

  return {
    threshold,
    adultClasses,
    async classify(image, { signal } = {}) {
      const started = performance.now();
      signal?.throwIfAborted();
      const pixels = await toModelInput(image);
      const downscaleMs = performance.now() - started;
      const { probabilities, inferenceMs } = await client.run(pixels, signal);
      const score = adultScore(probabilities, adultClasses);
      return { nsfw: score >= threshold, score, probabilities, ms: performance.now() - started, downscaleMs, inferenceMs };
    },
    warmUp: () => client.start(),
    close: () => client.close(closeTimeoutMs),
  };
}

/** The summed probability of `classes`, clamped to 0…1 against float rounding. */
export function adultScore(probabilities: NsfwProbabilities, classes: readonly NsfwClass[] = DEFAULT_ADULT_CLASSES): number {
  const sum = classes.reduce((total, name) => total + probabilities[name], 0);
  return Math.min(1, Math.max(0, sum));
}
