/**
 * The engine contract: the only thing `tasks/` knows about how pixels are made.
 *
 * Types only. An engine turns one generation call into images; batching, retries, encoding,
 * storage, safety and delivery all belong to `tasks/` (after the Vercel AI SDK `ImageModel`).
 */

/** Decoded pixels, row-major, 8 bits per channel, no padding between rows. */
export interface RawImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  /** 3 = RGB, 4 = RGBA. */
  readonly channels: 3 | 4;
}

/** Output formats every engine and the encoder understand. */
export type ImageFormat = 'jpg' | 'png' | 'webp';

/** An already-encoded image, as an upstream engine returns it. */
export interface EncodedImage {
  readonly bytes: Uint8Array;
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
}

/**
 * A resolved input image (reference image or element view). `tasks/` resolves every input
 * form (UUID, URL, data URI, base64) before the engine is called.
 */
export interface InputImage {
  /** The normalised encoded bytes (JPG, PNG or WEBP), for engines that forward images. */
  readonly encoded: EncodedImage;
  /** Decoded RGB pixels, EXIF orientation applied, long side at most 1024 px, for engines that look at them. */
  readonly pixels: RawImage;
}

/** A face / subject element (`inputs.elements[i]`, Kiln extension). */
export interface InputElement {
  readonly frontal: InputImage;
  /** Up to 3 further views of the same subject. */
  readonly views: readonly InputImage[];
}

/** One image that a call must produce. */
export interface ImageSlot {
  /** Index of the image within the task (0-based, stable across calls and restarts). */
  readonly index: number;
  /** The seed of this image (reported in the result item). */
  readonly seed: number;
  /** Position in a series (`resultType: "series"`), absent for single images. */
  readonly seriesIndex?: number;
}

/**
 * A small durable note an engine may keep for one call across restarts (for example the
 * upstream task id it submitted, so that after a crash it polls that task instead of paying
 * for a new one). Kept by `tasks/` with the call's first image; empty for a new call.
 */
export interface EngineCheckpoint {
  load(): Promise<string | undefined>;
  save(value: string): Promise<void>;
}

/** Everything an engine needs to make the images of one call. */
export interface GenerateCall {
  /** Model id as requested, e.g. `klingai:kling-image@o3`. */
  readonly model: string;
  readonly prompt: string;
  readonly width: number;
  readonly height: number;
  /** The images to make; never longer than the engine's `maxImagesPerCall`. */
  readonly images: readonly ImageSlot[];
  /**
   * The task's base seed: shared by every image of a task, so that a series can keep one
   * world while each image's own `seed` varies it.
   */
  readonly taskSeed: number;
  /** Series generation: total number of images in the series, absent for single results. */
  readonly seriesAmount?: number;
  /** Resolved `inputs.referenceImages`, in request order (at most 10 with the elements). */
  readonly referenceImages: readonly InputImage[];
  /** Resolved `inputs.elements` (Kiln extension), in request order. */
  readonly elements: readonly InputElement[];
  /** Output format and quality the task asked for, for engines that return encoded bytes. */
  readonly output: { readonly format: ImageFormat; readonly quality: number };
  /** Engine-specific options (already validated by the engine's own schema). */
  readonly options: Readonly<Record<string, unknown>>;
  /** Aborted when the task is cancelled or the server shuts down. */
  readonly signal: AbortSignal;
  /** Durable state for this call (see `EngineCheckpoint`). */
  readonly checkpoint: EngineCheckpoint;
  /** Whether the task asked for `includeCost` (engines that pay upstream may ask for it too). */
  readonly includeCost: boolean;
  /**
   * Called by engines that can stream, once per finished image, as soon as it exists.
   * Images passed here may be left out of the returned `images`.
   */
  readonly onImage?: (image: GeneratedImage) => void | Promise<void>;
}

/** One image an engine made. Exactly one of `pixels` and `encoded` is set. */
export interface GeneratedImage {
  /** `ImageSlot.index` this image fills. */
  readonly index: number;
  readonly seed: number;
  readonly pixels?: RawImage;
  readonly encoded?: EncodedImage;
  /** Cost in USD reported by an upstream engine, if any; otherwise `tasks/` uses the model's price table. */
  readonly cost?: number;
}

export interface GenerateResult {
  readonly images: readonly GeneratedImage[];
  /** Human-readable notes about options the engine ignored. Logged, never sent to the client. */
  readonly warnings: readonly string[];
}

/** An image engine. Implementations own their resources and release them in `close()`. */
export interface ImageEngine {
  /** Engine name, reported in `X-Kiln-Engine`. */
  readonly name: string;
  /** How many images one `generate` call may be asked for (the studio engine: 1). */
  readonly maxImagesPerCall: number;
  /** How many calls may run at once (e.g. the size of a worker pool). */
  readonly concurrency: number;
  generate(call: GenerateCall): Promise<GenerateResult>;
  close(): Promise<void>;
}
