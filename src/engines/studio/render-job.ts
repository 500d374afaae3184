/** What the main thread sends a render worker: plain, structured-cloneable data. */
import type { Thumbnail } from './references.ts';

export interface RenderJob {
  readonly prompt: string;
  readonly width: number;
  readonly height: number;
  /** The image's own seed: layout of a single image, the moment within a series. */
  readonly seed: number;
  /** The task's seed: the world shared by a series. */
  readonly taskSeed: number;
  readonly seriesIndex?: number;
  readonly seriesAmount?: number;
  /** Reference images, downsampled to at most 64 px on the long side. */
  readonly references: readonly Thumbnail[];
  /** Element frontal images (decoded RGB, at most 1024 px on the long side). */
  readonly elements: readonly Thumbnail[];
}

/** One strip of an image that several workers render at once, straight into a shared buffer. */
export interface RenderStrip {
  /** The whole image's RGB bytes (width·height·3); the worker writes columns x0 ≤ x < x1 only. */
  readonly buffer: SharedArrayBuffer;
  readonly x0: number;
  readonly x1: number;
  /** The same for every strip of one image: a worker that gets two strips of it plans the scene once. */
  readonly image: number;
}

export interface RenderRequest {
  readonly id: number;
  readonly job: RenderJob;
  /** Absent: render the whole image into a new buffer and transfer it back. */
  readonly strip?: RenderStrip;
}

export type RenderResponse =
  | { readonly id: number; readonly type: 'started' }
  /** `buffer` is the whole image's pixels, absent for a strip (its pixels are in the shared buffer). */
  | { readonly id: number; readonly type: 'done'; readonly buffer?: ArrayBuffer; readonly width: number; readonly height: number; readonly millis: number }
  | { readonly id: number; readonly type: 'error'; readonly message: string };
