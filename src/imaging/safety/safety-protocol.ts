/**
 * What the safety classifier's main-thread side and its worker say to each other, and the
 * class names of the model (nsfwjs's MobileNetV2, trained on five classes).
 */

/** The model's classes, in the order of its output vector. */
export const NSFW_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

export type NsfwClass = (typeof NSFW_CLASSES)[number];

/** One probability per class; the five sum to 1 (softmax output). */
export type NsfwProbabilities = Readonly<Record<NsfwClass, number>>;

/** The model looks at a square RGB image of this side length. */
export const MODEL_INPUT_SIZE = 224;

/** Main thread → worker. `pixels` is MODEL_INPUT_SIZE² RGB bytes, row-major. */
export interface ClassifyRequest {
  readonly type: 'classify';
  readonly id: number;
  readonly pixels: Uint8Array;
}

/** Worker → main thread, once the model is loaded and warmed up. */
export interface WorkerReady {
  readonly type: 'ready';
  readonly backend: string;
  readonly loadMs: number;
}

export interface ClassifyResult {
  readonly type: 'result';
  readonly id: number;
  readonly probabilities: NsfwProbabilities;
  readonly inferenceMs: number;
}

export interface ClassifyFailed {
  readonly type: 'failed';
  readonly id: number;
  readonly message: string;
}

export type WorkerMessage = WorkerReady | ClassifyResult | ClassifyFailed;

/** Options the worker receives as `workerData`. */
export interface WorkerOptions {
  /** Directory (with trailing slash) holding the tfjs-backend-wasm `.wasm` binaries. */
  readonly wasmDirectory: string;
  /** Inferences on a neutral image after loading, so the first real check is not slow. */
  readonly warmUpRuns: number;
}
